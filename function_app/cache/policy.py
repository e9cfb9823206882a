"""RFC 9111 rules for a shared cache, as pure functions of header lists and numbers.

What this cache does, in short (sections of RFC 9111 in brackets):
- Only GET answers are stored; HEAD is answered from a GET entry, never stored itself [4].
- A request with Cache-Control no-store is neither served nor stored (X-Cache: BYPASS); no-cache
  (or Pragma: no-cache without Cache-Control) is not served from the cache but may be stored;
  max-age=N refuses entries older than N seconds [5.2.1].
- Whether an answer may be replayed to another request within its key's scope at all is one
  rule for both caches (`unshareable`): never with no-store or private [5.2.2.3, 5.2.2.7], a
  Set-Cookie (one client's cookie must not reach another), Vary: * [4.1], or a body in a
  content coding when the key does not hold Accept-Encoding (a replay must suit every request
  its key covers); for a request whose credentials are not part of the key, only with public,
  s-maxage or must-revalidate [3.5]. The GET cache (`freshness`) also needs a cacheable
  status [4.2.2] and no no-cache (it does not revalidate, so no-cache means "never reuse").
  Freshness: s-maxage,
  else max-age, else Expires minus Date (an invalid Expires, such as "0", means already
  stale), else the route's TTL [4.2.1]. The completion cache keeps its own configured TTL.
- Age is what the entry already had when stored (the upstream's Age) plus the time since [4.2.3].
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ..http.headers import Headers

# Statuses cacheable by default (RFC 9110 section 15.1).
CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
NEVER_SHARED = ("no-store", "private")
# What lets an answer to a request with credentials be shared (RFC 9111 section 3.5).
SHAREABLE_WITH_CREDENTIALS = ("public", "s-maxage", "must-revalidate")


def directives(headers: Headers, name: str = "cache-control") -> dict[str, str | None]:
    """Cache-Control directives, lower-cased, with their value (quotes removed) or None."""
    found: dict[str, str | None] = {}
    for value in headers.get_all(name):
        for part in value.split(","):
            token, _, arg = part.strip().partition("=")
            token = token.strip().lower()
            if token and token not in found:
                found[token] = arg.strip().strip('"') if arg else None
    return found


def seconds(value: str | None) -> int | None:
    """A delta-seconds value; None when absent or malformed (treated as not given)."""
    if value is None or not value.isdigit():
        return None
    return min(int(value), 2**31)


@dataclass(frozen=True)
class RequestRules:
    """What a request allows: `bypass` skips the cache both ways; `reuse` false forces a fetch."""

    bypass: bool
    reuse: bool
    max_age: int | None


def request_rules(headers: Headers) -> RequestRules:
    found = directives(headers)
    if "no-store" in found:
        return RequestRules(True, False, None)
    no_cache = "no-cache" in found or (
        not found and (headers.get("pragma") or "").strip().lower() == "no-cache")
    return RequestRules(False, not no_cache, seconds(found.get("max-age")))


def vary_names(headers: Headers) -> tuple[str, ...] | None:
    """The request header names the answer varies on, sorted; None for Vary: * (never store)."""
    names: set[str] = set()
    for value in headers.get_all("vary"):
        for name in value.split(","):
            name = name.strip().lower()
            if name == "*":
                return None
            if name:
                names.add(name)
    return tuple(sorted(names))


def unshareable(headers: Headers, *, credentialed: bool = False, coding_keyed: bool = True,
                vary_keyed: bool = True) -> str | None:
    """Why an answer with response `headers` must not be replayed to any other request its
    cache key covers, or None when it may. `credentialed`: the request carried credentials
    (Authorization, API keys, cookies) that its key does not hold; `coding_keyed`: the key
    holds the request's Accept-Encoding, so an answer in a content coding is only replayed to
    requests that accept it; `vary_keyed`: the cache stores an answer with Vary per variant
    (else only a Vary on Accept-Encoding of an answer in no coding, which suits any request)."""
    found = directives(headers)
    for name in NEVER_SHARED:
        if name in found:
            return name
    if "set-cookie" in headers or "set-cookie2" in headers:
        return "set-cookie"
    names = vary_names(headers)
    if names is None:
        return "vary-star"
    coding = (headers.get("content-encoding") or "").strip().lower()
    if not coding_keyed and coding not in ("", "identity"):
        return "content-encoding"
    if not vary_keyed and set(names) - {"accept-encoding"}:
        return "vary"
    if credentialed and not any(name in found for name in SHAREABLE_WITH_CREDENTIALS):
        return "credentials"
    return None


def freshness(status: int, headers: Headers, default_ttl: int) -> int:
    """Seconds the answer may be reused by a shared cache; 0 means do not store it."""
    if status not in CACHEABLE_STATUSES or unshareable(headers) is not None:
        return 0
    found = directives(headers)
    if "no-cache" in found:
        return 0
    for name in ("s-maxage", "max-age"):
        if name in found:
            return seconds(found[name]) or 0
    expires = headers.get("expires")
    if expires is not None:
        return _expires_lifetime(expires, headers.get("date"))
    return default_ttl


def _http_date(value: str | None) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _expires_lifetime(expires: str, date: str | None) -> int:
    """Seconds from Date to Expires (RFC 9111 4.2.1); 0 when either cannot be read, or when
    there is no Date (this cache does not guess the origin's clock)."""
    end, start = _http_date(expires), _http_date(date)
    if end is None or start is None:
        return 0
    return max(0, int(end - start))


def initial_age(headers: Headers) -> float:
    """The Age the answer already had when it reached this cache."""
    return float(seconds(headers.get("age")) or 0)


def usable(age: float, ttl: float, rules: RequestRules) -> bool:
    """Whether an entry of `age` (freshness `ttl`) may answer a request with `rules`."""
    if not rules.reuse or age >= ttl:
        return False
    return rules.max_age is None or age <= rules.max_age
