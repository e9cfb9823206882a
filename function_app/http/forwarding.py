"""Header rules of a forwarding proxy (RFC 9110 section 7.6.1), as pure functions."""

from __future__ import annotations

import functools
import os
import re
from urllib.parse import unquote_plus

from .headers import Headers

# Hop-by-hop fields never cross the proxy, plus any field the Connection header names.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})
# Recomputed by the proxy (host, length) or secret to the gateway (the function key).
NOT_FORWARDED = frozenset({"host", "content-length", "x-functions-key"})
FORWARDED_FOR = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")
# The host in front of the handlers sets its own; the backend's would duplicate them.
HOST_SET = frozenset({"date", "server"})

# What a request sent upstream never carries as the client sent it (set again below).
UPSTREAM_DROPPED = NOT_FORWARDED | {"x-request-id", *FORWARDED_FOR}

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


# Connection values that name only fields HOP_BY_HOP drops anyway (what Node and uvicorn send on
# every kept-alive answer): nothing to parse for them.
_ONLY_HOP_BY_HOP = frozenset({("keep-alive",), ("Keep-Alive",), ("upgrade",), ("Upgrade",)})


def _named_in_connection(headers: Headers) -> set[str]:
    named: set[str] = set()
    for value in headers.get_all("connection"):
        named |= {token.strip().lower() for token in value.split(",") if token.strip()}
    return named


@functools.lru_cache(maxsize=32)
def _dropped(also: frozenset[str]) -> frozenset[str]:
    """HOP_BY_HOP and `also`, made once per `also` rather than per request."""
    return HOP_BY_HOP | also


# The two sets every request drops (made here: no cache look-up, a call, per message).
_DROPPED_UPSTREAM = _dropped(UPSTREAM_DROPPED)
_DROPPED_TO_CLIENT = _dropped(HOST_SET)


def strip_hop_by_hop(headers: Headers, also: frozenset[str] = frozenset()) -> Headers:
    """A copy of `headers` without hop-by-hop fields, fields named in Connection, and `also`."""
    return _stripped(headers, _dropped(also))


def _stripped(headers: Headers, dropped: frozenset[str]) -> Headers:
    """`headers` without the fields of `dropped` (HOP_BY_HOP and more) and those named in
    Connection."""
    # A message with no Connection field, or one naming only hop-by-hop fields (a kept-alive
    # answer), has nothing to scan: a probe of this package's own type's keys, no call.
    fields = headers._fields
    if "connection" in fields and fields["connection"] not in _ONLY_HOP_BY_HOP:
        named = _named_in_connection(headers)
        if named:
            dropped = dropped | named
    copy = object.__new__(Headers)  # Headers.without, written out: it ran on every request
    copy._fields = {k: fields[k] for k in fields if k not in dropped}
    return copy


def upstream_request_headers(
    headers: Headers, *, client_host: str, scheme: str, host: str | None, request_id: str
) -> Headers:
    """Headers to send upstream: cleaned, with X-Forwarded-* and X-Request-ID set."""
    # The fields read by probes of this package's own type, not get/get_all: four calls less
    # per request, the same values (forwarded_proto and forwarded_host state the rules).
    fields = headers._fields
    prior_for = ", ".join(fields["x-forwarded-for"]) if "x-forwarded-for" in fields else ""
    proto = fields["x-forwarded-proto"] if "x-forwarded-proto" in fields else ()
    forwarded = fields["x-forwarded-host"] if "x-forwarded-host" in fields else ()
    cleaned = _stripped(headers, _DROPPED_UPSTREAM)
    out = cleaned._fields
    out["x-forwarded-for"] = (f"{prior_for}, {client_host}" if prior_for else client_host,)
    out["x-forwarded-proto"] = ((proto and proto[0]) or scheme,)
    out["x-request-id"] = (request_id,)
    if forwarded := (forwarded and forwarded[0]) or host:
        out["x-forwarded-host"] = (forwarded,)
    return cleaned


def forwarded_host(headers: Headers, host: str | None) -> str:
    """The X-Forwarded-Host a backend is sent: a trusted proxy's (the forwarded stage drops an
    untrusted peer's), else the client's Host. Client-chosen either way; the cache keys on it."""
    return headers.get("x-forwarded-host") or host or ""


def forwarded_proto(headers: Headers, scheme: str) -> str:
    """The X-Forwarded-Proto a backend is sent: a trusted proxy's, else the gateway's scheme."""
    return headers.get("x-forwarded-proto") or scheme


def client_response_headers(headers: Headers) -> Headers:
    """Upstream response headers fit to pass to the client (a copy)."""
    return _stripped(headers, _DROPPED_TO_CLIENT)


def request_id_from(value: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one."""
    if value and _REQUEST_ID.match(value):
        return value
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


FUNCTION_KEY_PARAM = "code"


def strip_function_key(query: str) -> str:
    """The query string without any parameter the Functions host would read as the function key.

    The host looks `code` up case-insensitively after percent-decoding (ASP.NET's query
    collection), so `CODE`, `Code`, `%63ode` and `c%6Fde` all carry a key; each is dropped.
    """
    if not query:
        return query
    kept = [p for p in query.split("&") if not _is_key_param(p.split("=", 1)[0])]
    return "&".join(kept)


def _is_key_param(name: str) -> bool:
    if len(name) < len(FUNCTION_KEY_PARAM):
        return False
    return unquote_plus(name, encoding="latin-1").strip().lower() == FUNCTION_KEY_PARAM
