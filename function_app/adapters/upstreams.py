"""The Upstream adapter a setting names (UPSTREAM_CLIENT)."""

from __future__ import annotations

from ..core.upstream import Upstream

KINDS = ("aiohttp", "httpx", "aiohttp-direct")


def open_upstream(kind: str, max_connections: int) -> Upstream:
    """'aiohttp' (the default): httpx over the httpx-aiohttp transport; 'httpx': httpx's own
    pool; 'aiohttp-direct': aiohttp's client without httpx around each exchange (the same aiohttp
    call and bytes on the wire, cheaper per request: docs/PERFORMANCE.md). httpx stays the
    default, as the product's backend client; the direct adapter is an operator's opt-in."""
    if kind == "aiohttp-direct":
        from .aiohttp_upstream import AiohttpUpstream

        return AiohttpUpstream(max_connections)
    if kind not in KINDS:
        raise ValueError(f"unknown upstream client {kind!r}")
    from .httpx_upstream import HttpxUpstream, make_transport

    return HttpxUpstream(make_transport(kind, max_connections), max_connections)
