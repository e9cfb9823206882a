"""The upstream on aiohttp's client directly (UPSTREAM_CLIENT=aiohttp, the default).

It sends what the httpx upstream over the httpx-aiohttp transport sent (the same aiohttp call:
no redirects, no decompression, no cookies, the same timeouts and the same URL as httpx parsed
it), without building an httpx request, headers and response around each exchange: that layer
was about a fifth of the gateway's CPU per request (issue #26, load/profile_pipeline.py).
Failures map into the error tree as HttpxUpstream's do; tests/contract/test_upstream_contract.py
runs one suite over every adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from yarl import URL

from ..core.errors import (
    BadRequest,
    GatewayError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from ..core.upstream import UpstreamRequest, UpstreamResponse
from ..http.headers import Headers
from .aiohttp_resume import quiet_resume
from .deadline_body import DeadlineBody
from .httpx_upstream import tls_context
from .upstream_slots import Slots

log = logging.getLogger(__name__)

ERRORS = (OSError, TimeoutError, aiohttp.ClientError)  # what an exchange raises when it fails
# Idle connections are dropped before the 5 s that uvicorn and Node keep them by default, so the
# pool never reuses one the backend has just closed (a spurious 502 on a POST).
KEEPALIVE_S = 4.0
CHUNK_BYTES = 16 * 1024  # the most one body chunk holds; a chunk goes on as soon as it arrives


def translate(exc: Exception) -> GatewayError:
    """Map an aiohttp failure into the error tree: a timeout (connect or read) is 504, a refused
    or unreachable backend 502 `UpstreamConnectError` (never sent: safe to retry), else 502."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return UpstreamTimeout()
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError()
    return UpstreamError()


class AiohttpUpstream:
    """Exchanges with backends, at most `max_in_flight` at once (upstream_slots.Slots); the slot
    is held until the body ends, is closed, or its deadline passes (DeadlineBody)."""

    URL_CACHE_SIZE = 1024

    def __init__(self, max_in_flight: int, keepalive_s: float = KEEPALIVE_S):
        self._size = max_in_flight
        self._keepalive_s = keepalive_s
        self._slots = Slots(max_in_flight)
        self._session: aiohttp.ClientSession | None = None
        # Routes send to a handful of distinct URLs: each is parsed once, as httpx parsed it
        # (the URL the backend sees is unchanged), and the timeouts made once per connect timeout.
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _url(self, raw: str) -> URL:
        url = self._urls.get(raw)
        if url is None:
            try:
                url = URL(str(httpx.URL(raw)))
            except (httpx.InvalidURL, ValueError):  # the path rules should make this unreachable
                log.warning("upstream URL refused by the client library")
                raise BadRequest() from None
            if len(self._urls) >= self.URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[raw] = url
        return url

    def _timeout(self, connect_s: float) -> aiohttp.ClientTimeout:
        key = connect_s
        found = self._timeouts.get(key)
        if found is None:
            if len(self._timeouts) >= self.URL_CACHE_SIZE:
                self._timeouts.clear()
            # No sock_read: the exchange's deadline (timeout_at before the headers, DeadlineBody
            # after) already bounds every read, and aiohttp re-arms a sock_read timer on every
            # chunk received, a timer per chunk of every stream (issue #26).
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                sock_connect=connect_s, sock_read=None, connect=connect_s)
        return found

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use (inside the running loop). No cookie jar: one jar
        for every client of the gateway would send one client's cookies on another's request."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._size, keepalive_timeout=self._keepalive_s,
                                             ssl=tls_context())
            quiet_resume(connector)  # no resume call per body read while reading is not paused
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        deadline = asyncio.get_running_loop().time() + request.timeout_s
        url = self._url(request.url)
        timeout = self._timeout(request.connect_timeout_s)
        headers = _outgoing(request.headers)
        slots = self._slots
        if not slots.take_now():  # a free slot: no coroutine to make and await
            await slots.take(request.connect_timeout_s)
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._client().request(
                    request.method, url, headers=headers, data=request.body or None,
                    allow_redirects=False, auto_decompress=False, compress=False,
                    timeout=timeout)
        except ERRORS as exc:
            slots.free()
            raise translate(exc) from exc
        except BaseException:
            slots.free()
            raise
        body = DeadlineBody(response.content.iter_chunked(CHUNK_BYTES), deadline,
                            _closer(response, slots.free), translate, ERRORS)
        return UpstreamResponse(response.status, Headers.from_raw(response.raw_headers), body)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _outgoing(headers: Headers) -> list[tuple[str, str]] | httpx.Headers:
    """The request's fields as aiohttp takes them. ASCII (nearly always) goes as it is; a value
    with other bytes goes decoded as httpx decoded it before (ASCII, else UTF-8, else latin-1,
    for the whole set), so the bytes a backend receives do not change with the adapter."""
    pairs = headers.pairs()
    if "".join([value for _, value in pairs]).isascii():
        return pairs
    return httpx.Headers(headers.raw())


def _closer(response: aiohttp.ClientResponse, free: Callable[[], None]
            ) -> Callable[[], Awaitable[None]]:
    """Ends one exchange: releases the answer (its connection back to the pool when it was read
    to the end, else closed) and frees its slot."""

    async def close() -> None:
        try:
            await response.__aexit__(None, None, None)
        except ERRORS:
            pass  # closing a connection the backend already dropped
        finally:
            free()

    return close
