"""The upstream over an httpx transport (aiohttp-backed by default, measured faster here).

The transport is driven directly through httpx's one-method contract, `handle_async_request`: the
client layer adds default headers (Accept-Encoding, User-Agent), a cookie jar and redirects, none of
which a proxy wants.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import httpx

from ..core.errors import (
    GatewayError,
    Overloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from ..core.upstream import UpstreamRequest, UpstreamResponse

log = logging.getLogger(__name__)


def make_transport(kind: str, max_connections: int) -> httpx.AsyncBaseTransport:
    """The transport named by UPSTREAM_CLIENT: 'aiohttp' or 'httpx' (httpx's own pool)."""
    # Idle connections are dropped before the 5 s that uvicorn and Node keep them by default, so
    # the pool never reuses one the backend has just closed (a spurious 502 on a POST).
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections, keepalive_expiry=4)
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits, trust_env=False)
    return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)


def translate(exc: Exception) -> GatewayError:
    """Map a transport failure to the error tree, by its original cause.

    httpx-aiohttp maps every aiohttp connection error (a reset included) to ConnectTimeout, so the
    httpx class alone cannot tell a timeout from a reset; the aiohttp exception it wraps can.
    """
    if isinstance(exc, httpx.PoolTimeout):
        return Overloaded()
    cause = exc.__cause__
    if isinstance(exc, TimeoutError) or isinstance(cause, TimeoutError):
        return UpstreamTimeout()
    if isinstance(exc, httpx.TimeoutException) and not isinstance(cause, aiohttp.ClientError):
        return UpstreamTimeout()
    if isinstance(exc, httpx.ConnectError) or isinstance(cause, aiohttp.ClientConnectorError):
        return UpstreamConnectError()  # refused or unreachable: the request was never sent
    return UpstreamError()


class HttpxUpstream:
    URL_CACHE_SIZE = 1024

    def __init__(self, transport: httpx.AsyncBaseTransport):
        self._transport = transport
        # Parsing a URL is the largest cost of building an httpx.Request (measured: about 14 %
        # of the gateway's CPU); routes send to a handful of distinct URLs, so keep them parsed.
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, raw: str) -> httpx.URL:
        url = self._urls.get(raw)
        if url is None:
            if len(self._urls) >= self.URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[raw] = httpx.URL(raw)
        return url

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s
        outgoing = httpx.Request(
            request.method, self._url(request.url), headers=request.headers, content=request.body,
            extensions={"timeout": {"connect": request.connect_timeout_s,
                                    "read": request.timeout_s, "write": request.timeout_s,
                                    "pool": request.connect_timeout_s}},
        )
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._transport.handle_async_request(outgoing)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            raise translate(exc) from exc
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
        return UpstreamResponse(response.status_code, headers, _relay(response, deadline))

    async def aclose(self) -> None:
        await self._transport.aclose()


async def _relay(response: httpx.Response, deadline: float) -> AsyncIterator[bytes]:
    """Yield raw chunks until the body ends or the deadline passes; always close the exchange.

    Headers are gone by now, so a failure can only cut the stream: raising makes the server abort
    the response, which the client sees as a truncated body rather than a clean end.
    """
    chunks = aiter(response.stream)  # type: ignore[arg-type]
    try:
        while True:
            # The deadline covers each wait for a chunk, never the consumer's work between them.
            async with asyncio.timeout_at(deadline):
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            if chunk:
                yield chunk
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        log.warning("upstream stream ended early: %s", type(exc).__name__)
        raise translate(exc) from exc
    finally:
        await response.aclose()
