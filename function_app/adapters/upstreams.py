"""The Upstream adapter a setting names (UPSTREAM_CLIENT)."""

from __future__ import annotations

from ..core.upstream import Upstream

KINDS = ("aiohttp", "httpx", "httpx-aiohttp")


def open_upstream(kind: str, max_connections: int) -> Upstream:
    """'aiohttp': aiohttp's client directly (the default, the cheapest per request); 'httpx':
    httpx's own pool; 'httpx-aiohttp': httpx over the httpx-aiohttp transport, the default before
    issue #26, kept so that benchmarks and tests can compare."""
    if kind == "aiohttp":
        from .aiohttp_upstream import AiohttpUpstream

        return AiohttpUpstream(max_connections)
    if kind not in KINDS:
        raise ValueError(f"unknown upstream client {kind!r}")
    from .httpx_upstream import HttpxUpstream, make_transport

    return HttpxUpstream(make_transport(kind.removeprefix("httpx-"), max_connections),
                         max_connections)
