"""The upstream over an httpx transport (aiohttp-backed by default, measured faster here).

The transport is driven directly through httpx's one-method contract, `handle_async_request`: the
client layer adds default headers (Accept-Encoding, User-Agent), a cookie jar and redirects, none of
which a proxy wants.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

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
from .aiohttp_resume import quiet_resume
from .deadline_body import DeadlineBody, Reads

# WireHeaders: load/bench_header_path.py imports it from here, at every revision it compares.
from .httpx_messages import URL_TEXT, WireHeaders, host_field, outgoing_request  # noqa: F401
from .upstream_slots import RETRY_AFTER_S, Slots

log = logging.getLogger(__name__)

# What a transport raises for a failed exchange; `translate` maps each into the error tree.
TRANSPORT_ERRORS = (httpx.HTTPError, OSError, TimeoutError, aiohttp.ClientError)



def make_transport(kind: str, max_connections: int) -> httpx.AsyncBaseTransport:
    """The httpx transport for UPSTREAM_CLIENT: httpx-aiohttp's for 'aiohttp'
    (Content Safety's client is httpx either way), httpx's own pool for 'httpx'."""
    # Idle connections are dropped before the 5 s that uvicorn and Node keep them by default, so
    # the pool never reuses one the backend has just closed (a spurious 502 on a POST).
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections, keepalive_expiry=4)
    if kind == "aiohttp":
        from .aiohttp_transport import LeanAiohttpTransport  # httpx-aiohttp's, lean per request

        return LeanAiohttpTransport(
            verify=tls_context(), limits=limits, trust_env=False,
            client=lambda: _session(max_connections, limits.keepalive_expiry))
    return httpx.AsyncHTTPTransport(verify=tls_context(), limits=limits, trust_env=False)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The client TLS context (certifi's CA bundle, nothing from the environment), one per
    process for every upstream pool and session: each context loads the bundle again, ~20-27 ms
    of CPU at the build or the first request (docs/perf/pass13-coldstart.md), and nothing
    changes a context after it is made, so sharing it verifies exactly as separate ones did."""
    return httpx.create_ssl_context(trust_env=False)


def _session(max_connections: int, keepalive_s: float | None) -> aiohttp.ClientSession:
    """The aiohttp session under the transport, built as the transport would build its own but
    without a cookie jar: the transport's default session keeps one for every client of the
    gateway, so a backend's Set-Cookie to one client rode on the next client's requests (and
    matching cookies on each request cost ~1 % of the worker's CPU)."""
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=keepalive_s,
                                     ssl=tls_context())
    quiet_resume(connector)  # no resume call per body read while reading is not paused
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 trust_env=False)


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


_MONOTONIC_TIME = asyncio.BaseEventLoop.time  # returns time.monotonic()

# A backend URL made once (HttpxUpstream._url): parsed, its Host field, and for a transport that
# takes it the URL's text (else None).
_Url = tuple[httpx.URL, list[tuple[bytes, bytes]], str | None]


class HttpxUpstream:
    """Exchanges with backends, at most `max_in_flight` at once.

    A request that finds every slot taken waits up to its connect timeout, then gets 503
    `overloaded` with Retry-After: the pool is full, no backend is slow (a 504 would say so).
    A slot is held until the answer's body is finished or closed, or its deadline passes,
    whichever comes first (DeadlineBody): a client that stops reading a stream cannot hold a
    connection past the route's timeout.
    """

    URL_CACHE_SIZE = 1024
    RETRY_AFTER_S = RETRY_AFTER_S

    def __init__(self, transport: httpx.AsyncBaseTransport, max_in_flight: int | None = None):
        self._transport = transport
        self._slots = Slots(max_in_flight)
        self._url_text = getattr(transport, "TAKES_URL_TEXT", False)
        self._str_fields = getattr(transport, "TAKES_STR_FIELDS", False)
        # Parsing a URL is the largest cost of building an httpx.Request (measured: about 14 %
        # of the gateway's CPU); routes send to a handful of distinct URLs, so keep them parsed.
        self._urls: dict[str, _Url] = {}

    def _url(self, raw: str) -> _Url:
        """The parsed URL, the Host field it gives (`host_field`), and when the transport
        takes it the URL's text, made once per URL."""
        urls = self._urls
        if raw in urls:
            return urls[raw]
        if len(urls) >= self.URL_CACHE_SIZE:
            urls.clear()
        url = httpx.URL(raw)
        found = urls[raw] = (url, host_field(url), str(url) if self._url_text else None)
        return found

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        loop = asyncio.get_running_loop()
        # The loop's clock: time.monotonic() itself for asyncio's loops (no method frame).
        deadline = (time.monotonic() if type(loop).time is _MONOTONIC_TIME else loop.time()) \
            + request.timeout_s
        try:
            # No read timeout: `deadline` bounds the wait for the head (DeadlineBody.head below)
            # and every read of the body (DeadlineBody's one timer); a read timeout is a timer
            # re-armed on every chunk received (aiohttp's sock_read), which changed nothing.
            urls = self._urls  # `_url` inline when the URL is known (every request but the first)
            url, host, url_text = urls[request.url] if request.url in urls \
                else self._url(request.url)
            # The transport's timeouts, made per request: `timeout_s` is what is left of the
            # request's deadline, a different float each time (a table of them never hit).
            connect = request.connect_timeout_s
            extensions = {"timeout": {"connect": connect, "read": None,
                                      "write": request.timeout_s, "pool": connect}}
            if url_text is not None:
                extensions[URL_TEXT] = url_text
            outgoing = outgoing_request(request.method, url, request.headers, request.body,
                                        extensions, host, self._str_fields)
        except (httpx.InvalidURL, ValueError) as exc:  # the path rules should make this unreachable
            log.warning("upstream request refused by the client library: %s", type(exc).__name__)
            raise BadRequest() from None
        slots = self._slots
        if not slots.take_now():  # a free slot: no coroutine to make and await
            await slots.take(request.connect_timeout_s)
        # One timer per exchange: the body's deadline bounds the wait for the head too.
        body = DeadlineBody(None, deadline, None, translate, TRANSPORT_ERRORS, loop)
        try:
            response = await body.head(self._transport.handle_async_request(outgoing))
        except TRANSPORT_ERRORS as exc:
            body.abandon()
            slots.free()
            raise translate(exc) from exc
        except BaseException:
            body.abandon()
            slots.free()
            raise
        try:  # the answer's pairs as received (RawWireHeaders), without httpx's field list
            raw = response.headers._raw
        except AttributeError:  # any other transport's httpx.Headers
            raw = response.headers.raw
        headers = Headers.from_raw(raw)
        try:  # httpx-aiohttp's stream: read straight from aiohttp's answer (`body_chunks`)
            aiohttp_answer = response.stream._aiohttp_response  # type: ignore[attr-defined]
        except AttributeError:
            chunks = body_chunks(response)
            body.attach(chunks, _closer(response, chunks, slots.free))
        else:
            body.attach(Reads(aiohttp_answer.content.readany),
                        _aiohttp_closer(response, aiohttp_answer, slots.free))
        return UpstreamResponse(response.status_code, headers, body)

    async def aclose(self) -> None:
        await self._transport.aclose()


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The answer's body chunk by chunk: for httpx-aiohttp's stream, straight from aiohttp's
    reader (what has arrived, one read each), else from the httpx stream.

    httpx-aiohttp's stream is a generator over aiohttp's `iter_chunked`, three more frames
    and an async generator step per chunk than `readany`; failures then come as aiohttp's
    own exceptions, which TRANSPORT_ERRORS and `translate` take as they take httpx's. Closing
    stays the response's: `response.aclose()` releases the aiohttp answer either way."""
    try:  # attributes, not getattr with a default: three calls fewer on the default path
        read = response.stream._aiohttp_response.content.readany  # type: ignore[attr-defined]
    except AttributeError:
        return aiter(response.stream)  # type: ignore[arg-type]
    return Reads(read)


def _closer(response: httpx.Response, chunks: AsyncIterator[bytes], free: Callable[[], None]
            ) -> Callable[[], Awaitable[None]]:
    """Ends one exchange: closes the answer's chunk generator and the answer, frees its slot.

    The transports' streams are async generators; one left suspended (every answer read whole
    stops after its first chunk) was finalised by the event loop instead: a task, and a wake-up
    of the loop from its finaliser hook, per request (load/profile_pipeline.py --profile:
    `_asyncgen_finalizer_hook` once per request).

    The answer is closed as `httpx.Response.aclose` closes it (marked closed, its stream
    closed once), without the context manager that method enters only to name the request on
    a transport error: such an error is dropped here either way. Plain try/except rather than
    `contextlib.suppress`: no frames on success (this runs for every exchange)."""

    async def close() -> None:
        try:
            end = getattr(chunks, "aclose", None)
            if end is not None:
                try:
                    await end()
                except _CLOSE_QUIETLY:
                    pass  # RuntimeError: a read of it is still running; the loop ends it then
            if not response.is_closed:
                response.is_closed = True
                await response.stream.aclose()  # type: ignore[union-attr]  # an async stream
        except TRANSPORT_ERRORS:
            pass  # closing a connection the backend already dropped
        finally:
            free()

    return close


_CLOSE_QUIETLY = (RuntimeError, *TRANSPORT_ERRORS)


def _aiohttp_closer(response: httpx.Response, answer: aiohttp.ClientResponse,
                    free: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """`_closer` for an answer read through `Reads` from httpx-aiohttp's stream (no generator
    to close): the aiohttp answer closed as the stream's `aclose` closes it (its
    `__aexit__`), without that frame. The stream maps a failure of it to httpx's errors,
    which `_closer` drops, as it drops aiohttp's own here (TRANSPORT_ERRORS takes both)."""

    async def close() -> None:
        try:
            if not response.is_closed:
                response.is_closed = True
                await answer.__aexit__(None, None, None)
        except TRANSPORT_ERRORS:
            pass  # closing a connection the backend already dropped
        finally:
            free()

    return close
