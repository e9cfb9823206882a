"""The upstream over an httpx transport (aiohttp-backed by default, measured faster here).

The transport is driven directly through httpx's one-method contract, `handle_async_request`: the
client layer adds default headers (Accept-Encoding, User-Agent), a cookie jar and redirects, none of
which a proxy wants.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import httpx

from ..core.errors import (
    BadRequest,
    GatewayError,
    Overloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from ..core.upstream import UpstreamRequest, UpstreamResponse
from ..http.headers import Headers

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
        return Overloaded(headers={"Retry-After": "1"})
    cause = exc.__cause__
    if isinstance(exc, TimeoutError) or isinstance(cause, TimeoutError):
        return UpstreamTimeout()
    if isinstance(exc, httpx.TimeoutException) and not isinstance(cause, aiohttp.ClientError):
        return UpstreamTimeout()
    if isinstance(exc, httpx.ConnectError) or isinstance(cause, aiohttp.ClientConnectorError):
        return UpstreamConnectError()  # refused or unreachable: the request was never sent
    return UpstreamError()


class HttpxUpstream:
    """Exchanges with backends, at most `max_in_flight` at once.

    A request that finds every slot taken waits up to its connect timeout, then gets 503
    `overloaded` with Retry-After: the pool is full, no backend is slow (a 504 would say so).
    A slot is held until the answer's body is finished or closed, or its deadline passes,
    whichever comes first: a client that stops reading a stream cannot hold a connection past
    the route's timeout.
    """

    URL_CACHE_SIZE = 1024
    RETRY_AFTER_S = "1"

    def __init__(self, transport: httpx.AsyncBaseTransport, max_in_flight: int | None = None):
        self._transport = transport
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
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

    async def _take_slot(self, wait_s: float) -> None:
        if self._slots is None:
            return
        if not self._slots.locked():
            await self._slots.acquire()  # returns at once: no timer to arm on the hot path
            return
        try:
            async with asyncio.timeout(wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise Overloaded(headers={"Retry-After": self.RETRY_AFTER_S}) from None

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s
        try:
            outgoing = httpx.Request(
                request.method, self._url(request.url), headers=request.headers.raw(),
                content=request.body,
                extensions={"timeout": {"connect": request.connect_timeout_s,
                                        "read": request.timeout_s, "write": request.timeout_s,
                                        "pool": request.connect_timeout_s}},
            )
        except (httpx.InvalidURL, ValueError) as exc:  # the path rules should make this unreachable
            log.warning("upstream request refused by the client library: %s", type(exc).__name__)
            raise BadRequest() from None
        await self._take_slot(request.connect_timeout_s)
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._transport.handle_async_request(outgoing)
        except (httpx.HTTPError, OSError, TimeoutError, aiohttp.ClientError) as exc:
            self._free_slot()
            raise translate(exc) from exc
        except BaseException:
            self._free_slot()
            raise
        headers = Headers.from_raw(response.headers.raw)
        exchange = _Exchange(response, self._free_slot, loop, deadline)
        return UpstreamResponse(response.status_code, headers, _Relay(exchange))

    async def aclose(self) -> None:
        await self._transport.aclose()


class _Exchange:
    """One upstream answer, its slot, and a timer that ends it at the deadline.

    The timer matters when nobody is reading: the relay below only checks the deadline while
    it waits for the backend, and a client that stops reading suspends it between chunks.
    """

    def __init__(self, response: httpx.Response, free: Callable[[], None],
                 loop: asyncio.AbstractEventLoop, deadline: float):
        self.response = response
        self.expired = False
        self.reading = False
        self._free = free
        self._closed = False
        self._closing: asyncio.Future | None = None
        self.deadline = deadline
        self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if not self.reading and not self._closed:  # a read in progress times out by itself
            log.warning("upstream deadline passed while the client was not reading; closing")
            self._closing = asyncio.ensure_future(self.aclose())

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._timer.cancel()
        try:
            await self.response.aclose()
        except (httpx.HTTPError, OSError, aiohttp.ClientError):
            pass  # closing a connection the backend already dropped
        finally:
            self._free()


class _Relay:
    """The answer's body: raw chunks until it ends or the deadline passes.

    An iterator object rather than a generator, so that `aclose` frees the exchange even when
    nobody ever started reading (closing an unstarted generator skips its `finally`).
    Headers are gone by now, so a failure can only cut the stream: raising makes the server abort
    the response, which the client sees as a truncated body rather than a clean end.
    """

    def __init__(self, exchange: _Exchange):
        self._exchange = exchange
        self._chunks = aiter(exchange.response.stream)  # type: ignore[arg-type]

    def __aiter__(self) -> _Relay:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        try:
            while True:
                if exchange.expired:
                    raise UpstreamTimeout()
                exchange.reading = True
                try:
                    # The deadline covers each wait for a chunk; the exchange's timer covers the
                    # time spent suspended between chunks, while the client is not reading.
                    async with asyncio.timeout_at(exchange.deadline):
                        chunk = await anext(self._chunks, None)
                finally:
                    exchange.reading = False
                if chunk is None:
                    await exchange.aclose()
                    raise StopAsyncIteration
                if chunk:
                    return chunk
        except (httpx.HTTPError, OSError, TimeoutError, aiohttp.ClientError) as exc:
            log.warning("upstream stream ended early: %s", type(exc).__name__)
            await exchange.aclose()
            raise translate(exc) from exc
        except GatewayError:
            await exchange.aclose()
            raise

    async def aclose(self) -> None:
        await self._exchange.aclose()
