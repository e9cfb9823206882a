"""httpx-aiohttp's transport, with its per-request path made lean (UPSTREAM_CLIENT=aiohttp).

Same contract as `httpx_aiohttp.AiohttpTransport.handle_async_request` (which this subclass
replaces, nothing else): the same aiohttp call with the same options, the same httpx.Response, the
same aiohttp -> httpx exception mapping (its own table, AIOHTTP_EXC_MAP). What it does not do per
request, measured with load/profile_pipeline.py --profile (docs/perf/pass5-unary.md):

- enter a generator-based context manager (`map_aiohttp_exceptions`) around the request, each
  body read and the close: plain try/except maps the same exceptions, with no frames on success;
- hand aiohttp the httpx.Headers mapping, which aiohttp reads through `items()`: httpx first
  decodes every field once to detect the encoding, then again per read. Fields that are all ASCII,
  with no name twice (what a proxy sends), go as a dict of the same lower-case names and values;
  any other request takes `items()` as before (httpx's decoding, repeated names joined);
- enter aiohttp's request context manager (a frame and two calls): the session's request
  coroutine is awaited as `request()` would wrap it;
- render the URL (`str(request.url)`, ~1 us): HttpxUpstream hands its text over (URL_TEXT);
- encode the gateway's header text to bytes for httpx and decode it back for aiohttp: for
  such fields HttpxUpstream hands the text over (STR_FIELDS, docs/perf/pass9-unary.md);
- build an `aiohttp.ClientTimeout` per request: one per distinct timeout mapping;
- normalise the answer's byte-pair headers field by field, and copy them and the extensions in
  httpx.Response's constructor: incoming_response (httpx_messages.py) makes the same object.
"""

from __future__ import annotations

import typing

import aiohttp
import httpx
from aiohttp import ClientSession, ClientTimeout
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AIOHTTP_EXC_MAP

from ..http.headers import NameTable
from .httpx_messages import STR_FIELDS, URL_TEXT, incoming_response


def mapped(exc: Exception) -> Exception | None:
    """The httpx exception httpx-aiohttp raises for `exc` (its most specific entry); None when
    its table has none (then `exc` is raised as it was)."""
    found: type[Exception] | None = None
    for from_exc, to_exc in AIOHTTP_EXC_MAP.items():
        if isinstance(exc, from_exc) and (found is None or issubclass(to_exc, found)):
            found = to_exc
    return None if found is None else found(str(exc))


_ASCII_NAME = NameTable(lambda name: name.decode("ascii"))  # UnicodeDecodeError: not ASCII
_REASON = NameTable(str.encode)  # an answer's reason phrase -> its bytes, once per phrase


def aiohttp_headers(headers: httpx.Headers) -> typing.Mapping[str, str]:
    """What aiohttp is given for `headers`: a plain dict of the same lower-case names and values
    when every field is ASCII and no name repeats (then equal to `dict(headers.items())`), else
    the httpx mapping itself. Reads httpx's field list (raw, lower-case name, value) as
    WireHeaders writes it (httpx is pinned)."""
    fields = headers._list
    names = _ASCII_NAME
    try:
        plain = {names[lower]: value.decode("ascii") for _, lower, value in fields}
    except UnicodeDecodeError:
        return headers
    return plain if len(plain) == len(fields) else headers


class ResponseStream(httpx.AsyncByteStream):
    """The answer's body in chunks of up to CHUNK_SIZE, failures mapped as httpx-aiohttp's."""

    CHUNK_SIZE = 1024 * 16

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        # httpx-aiohttp's name for it, which httpx_upstream.body_chunks reads a body through
        self._aiohttp_response = response

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        try:
            async for chunk in self._aiohttp_response.content.iter_chunked(self.CHUNK_SIZE):
                yield chunk
        except Exception as exc:
            error = mapped(exc)
            if error is None:
                raise
            raise error from exc

    async def aclose(self) -> None:
        try:
            await self._aiohttp_response.__aexit__(None, None, None)
        except Exception as exc:
            error = mapped(exc)
            if error is None:
                raise
            raise error from exc


class LeanAiohttpTransport(AiohttpTransport):
    """AiohttpTransport for a proxy: no proxy, UDS or SNI options (make_transport sets none).
    A request whose extensions carry URL_TEXT (HttpxUpstream adds it) hands aiohttp that text,
    equal to `str(request.url)`, without rendering the URL again; one whose extensions carry
    STR_FIELDS hands aiohttp that dict, equal to what `aiohttp_headers` makes of its fields."""

    TAKES_URL_TEXT = True
    TAKES_STR_FIELDS = True

    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        super().__init__(*args, **kwargs)
        self._timeouts: dict[tuple, ClientTimeout] = {}

    def _timeout(self, extensions: dict) -> ClientTimeout:
        """The ClientTimeout for the request's "timeout" extension, one per distinct mapping.
        Subscripts, not `dict.get`: httpx's client and HttpxUpstream give all four keys."""
        timeout = extensions["timeout"] if "timeout" in extensions else {}
        try:
            key = (timeout["connect"], timeout["read"], timeout["pool"])
        except KeyError:
            key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        timeouts = self._timeouts
        if key in timeouts:
            return timeouts[key]
        if len(timeouts) >= 256:
            timeouts.clear()
        found = timeouts[key] = ClientTimeout(sock_connect=key[0], sock_read=key[1],
                                              connect=key[2])
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.proxy is not None or "sni_hostname" in request.extensions:
            return await super().handle_async_request(request)  # options the gateway never sets
        client = self.client
        if type(client) is not ClientSession and not isinstance(client, ClientSession):
            client = self.client = self.get_client()
        try:
            extensions = request.extensions
            try:  # `request.content` without its property: what it returns, when read
                data: bytes | httpx.AsyncByteStream | None = request._content or None
            except AttributeError:  # not read (the property's RequestNotRead): a stream
                data = request.stream  # type: ignore[assignment]
                request.headers.pop("transfer-encoding", None)  # handled by aiohttp
            try:  # `_timeout`'s look-up, inline when the mapping was seen before
                limits = extensions["timeout"]
                timeout = self._timeouts[(limits["connect"], limits["read"], limits["pool"])]
            except KeyError:
                timeout = self._timeout(extensions)
            # The session's request coroutine itself: `request()` wraps it in a context
            # manager whose `__aenter__` (a frame, and the answer's own `__aenter__`) only
            # marks the answer as used in a `with`, which matters to `raise_for_status` alone
            # (never called: the session sets none). aiohttp is pinned.
            response = await client._request(
                request.method,
                extensions[URL_TEXT] if URL_TEXT in extensions else str(request.url),
                headers=extensions[STR_FIELDS] if STR_FIELDS in extensions
                else aiohttp_headers(request.headers), data=data, allow_redirects=False,
                auto_decompress=False, compress=False,
                timeout=timeout,
                server_hostname=None, proxy=None, proxy_auth=None, proxy_headers=None,
            )
        except Exception as exc:
            error = mapped(exc)
            if error is None:
                raise
            raise error from exc
        answered = {"http_version": b"HTTP/1.1"}
        if response.reason:
            answered["reason_phrase"] = _REASON[response.reason]
        # `_raw_headers`: what the `raw_headers` property (a reified one) returns; pinned.
        return incoming_response(response.status, response._raw_headers,
                                 ResponseStream(response), request, answered)
