"""What of a request, beyond its path and query, can change the answer a backend gives, and is
therefore either in a cache key or a reason not to use the cache.

The upstream step forwards nearly every client header (http/forwarding.py). A backend should
name what its answer depends on in Vary, and the GET cache honours Vary; but backends forget,
and what the gateway itself forwards on the client's behalf is the gateway's to account for:

- keyed: the host and scheme the backend is told (X-Forwarded-Host, X-Forwarded-Proto), since
  links and redirects are built from them; and, for the GET cache, the content codings the
  client accepts (Accept-Encoding, or the identity the gateway asks for when there is none),
  so a gzip answer is never replayed to a client that cannot read it;
- credentials (Authorization, API key headers, Cookie; CacheConfig.credential_headers): a
  reason to bypass a shared entry, or part of a per-client partition (wiring/cache.py: client_of);
- REWRITES, headers that frameworks read to change the path, method or origin of a request:
  a reason to bypass, since keying on them would only give an attacker a key of their own.

Anything else (Accept, Accept-Language, User-Agent...) is content negotiation, which a backend
must declare in Vary; see docs/CACHE.md. A Vary names fields of the request the backend got, so
variants are told apart by the headers as sent (`as_sent`), not as the client wrote them: a
Vary on X-Forwarded-For separates clients even when none of them sent one.
"""

from __future__ import annotations

from ..http.forwarding import forwarded_host, forwarded_proto, upstream_request_headers
from ..http.headers import Headers
from ..http.messages import GatewayRequest

# Written by the gateway anew for every request or attempt: an answer that varies on one of
# them can never serve another request, so it is not stored.
PER_REQUEST = frozenset({"x-request-id", "traceparent", "tracestate"})
REWRITES = frozenset({
    "forwarded", "x-forwarded-prefix", "x-forwarded-port", "x-forwarded-server", "x-host",
    "x-original-host", "x-original-url", "x-rewrite-url", "x-http-method-override",
    "x-http-method", "x-method-override",
})


def rewrite_in(headers: Headers) -> str | None:
    """The first header of `headers` that rewrites a request behind the gateway, or None."""
    return next((name for name in sorted(REWRITES) if name in headers), None)


def accepted_codings(headers: Headers) -> str:
    """Accept-Encoding as forwarded (identity when absent), without case or spacing
    differences, so equivalent spellings share an entry."""
    values = headers.get_all("accept-encoding")
    if not values:
        return "identity"
    codings = {part.replace(" ", "").replace("\t", "").lower() for value in values
               for part in value.split(",")}
    return ",".join(sorted(codings - {""}))


def origin(headers: Headers, scheme: str) -> str:
    """The scheme and host the backend is told the client used."""
    return forwarded_proto(headers, scheme) + "://" + forwarded_host(headers, headers.get("host"))


def as_sent(request: GatewayRequest) -> Headers:
    """The headers the upstream step sends for `request` (routing/exchange.py builds them the
    same way; tests/unit/test_cache_http.py checks the two agree)."""
    sent = upstream_request_headers(
        request.headers, client_host=request.client_host, scheme=request.scheme,
        host=request.headers.get("host"), request_id=request.request_id)
    if "accept-encoding" not in request.headers:
        sent.set("accept-encoding", "identity")
    return sent
