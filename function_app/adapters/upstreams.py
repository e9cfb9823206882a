"""The Upstream adapter a setting names (UPSTREAM_CLIENT)."""

from __future__ import annotations

from collections.abc import Callable

from ..core.upstream import Upstream, UpstreamRequest, UpstreamResponse

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


class OpenedOnFirstUse:
    """An Upstream opened by `open()` at its first `send`: the /healthz probes' own pool, which
    no request needs, so the first request does not wait for its transport (for the default
    client, a TLS context loading its CA bundle: ~20-25 ms of CPU, docs/perf/pass13-coldstart.md).
    Opening is synchronous, so two first sends on the loop cannot open it twice."""

    def __init__(self, open: Callable[[], Upstream]):
        self._open = open
        self._upstream: Upstream | None = None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        upstream = self._upstream
        if upstream is None:
            upstream = self._upstream = self._open()
        return await upstream.send(request)

    async def aclose(self) -> None:
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            await upstream.aclose()
