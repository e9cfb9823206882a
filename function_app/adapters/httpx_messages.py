"""The httpx objects the upstream exchanges, made for the gateway's own fields in one pass.

httpx's constructors normalise every header field through generic calls and copy what they are
given; the gateway's fields are already normalised (http/headers.py, or aiohttp's byte pairs),
so the request and its httpx fields are built here as the constructors would build them
(httpx is pinned; tests/unit/test_httpx_outgoing.py checks each against its constructor).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from ..http.headers import Headers, NameTable, learned

# An extension of the outgoing httpx.Request (transports ignore names they do not know):
# `str(request.url)`, made once per backend URL, for a transport that sets TAKES_URL_TEXT
# (aiohttp_transport.py), which then does not render the URL again (~1 us a request).
URL_TEXT = "gateway.url_text"


_UPPER = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def host_field(url: httpx.URL) -> list[tuple[bytes, bytes]]:
    """The Host field httpx.Request adds for `url` (none without a host)."""
    return [(b"Host", url.netloc)] if url.host else []


def outgoing_request(method: str, url: httpx.URL, headers: Headers, body: bytes,
                     extensions: dict, host: list[tuple[bytes, bytes]] | None = None,
                     str_fields: bool = False) -> httpx.Request:
    """The httpx.Request that `httpx.Request(method, url, headers=headers.raw(), content=body,
    extensions=extensions)` makes, with the same header fields in the same order, built once.

    That constructor normalises the headers twice (once as given, again after adding Host and
    the body's Content-Length), copies the URL and the extensions, and encodes the body through
    its generic content path; with a stream given it adds nothing, so the two fields are added
    here as it would add them, the fields go in as WireHeaders, and the request's attributes are
    set as the constructor sets them (`extensions` is taken as it is, not copied). A request
    that already names Host or Content-Length takes the constructor's own path.

    `str_fields` (a transport that sets TAKES_STR_FIELDS): when every field is ASCII and no
    name repeats, the fields also go as STR_FIELDS, the text a str-keyed client (aiohttp) is
    handed, and the httpx fields are made from it only if something reads them."""
    fields = headers._fields  # lower-case names: `in headers` without a call per name
    if "host" in fields or "content-length" in fields:
        return httpx.Request(method, url, headers=headers.raw(), content=body,
                             extensions=extensions)
    if method not in _UPPER:  # the gateway's methods are upper case already
        method = method.upper()
    if host is None:
        host = host_field(url)
    outgoing = object.__new__(httpx.Request)
    outgoing.method, outgoing.url, outgoing.extensions = method, url, extensions
    text = _str_fields(method, host, headers, body) if str_fields else None
    if text is not None:
        extensions[STR_FIELDS] = text
        outgoing.headers = TextWireHeaders(text)
    else:
        outgoing.headers = WireHeaders(_wire_fields(method, host, headers.raw(), body))
    outgoing.stream = httpx.ByteStream(body)
    # What `outgoing.read()` leaves, as the constructor does for bytes (`content` is then
    # available): the body joined from its one-chunk stream, which is the body itself (a
    # bytes object joined alone is returned as it is). httpx is pinned; the test reads both.
    outgoing._content = body if type(body) is bytes else bytes(body)
    return outgoing


def _wire_fields(method: str, host: list[tuple[bytes, bytes]], raw: list[tuple[bytes, bytes]],
                 body: bytes) -> list[tuple[bytes, bytes]]:
    """The fields the constructor sends: Host first, Content-Length after the fields given
    for a body, before them for an empty POST, PUT or PATCH, absent otherwise."""
    if body:
        return [*host, *raw, (b"Content-Length", str(len(body)).encode())]
    if method in ("POST", "PUT", "PATCH"):
        return [*host, (b"Content-Length", b"0"), *raw]
    return [*host, *raw]


# An extension of the outgoing httpx.Request for a transport that sets TAKES_STR_FIELDS
# (aiohttp_transport.py): the header fields as {lower-case name: value}, all ASCII, in the
# order the httpx fields have, which it hands its client instead of decoding each field again.
STR_FIELDS = "gateway.str_fields"
_HOST_TEXT: dict[bytes, str] = {}  # a backend's netloc, as text (an exact dict: NameTable)


def _str_fields(method: str, host: list[tuple[bytes, bytes]], headers: Headers, body: bytes
                ) -> dict[str, str] | None:
    """`_wire_fields` as text (see STR_FIELDS), or None when a name repeats or a name or value
    is not ASCII (the transport then decodes the httpx fields as httpx-aiohttp does).

    Made in one dict, in the wire order: an intermediate dict of the fields and a merge of it
    with Host and Content-Length were ~7k instructions a request each, and a join of the
    names and another of the values for the ASCII test ~4k each (callgrind; a join of a dict
    makes a list of it first)."""
    if host:
        netloc, texts = host[0][1], _HOST_TEXT
        text = {"host": texts[netloc] if netloc in texts
                else learned(texts, netloc, netloc.decode("ascii"))}
    else:
        text = {}
    if not body and method in ("POST", "PUT", "PATCH"):
        text["content-length"] = "0"
    try:  # unpacking `(value,)` fails on a name with several values: no call per field
        for name, (value,) in headers._fields.items():
            text[name] = value
    except ValueError:
        return None
    if body:
        text["content-length"] = str(len(body))
    return text if "".join([*text, *text.values()]).isascii() else None


_WIRE_LOWER = NameTable(bytes.lower)


class WireHeaders(httpx.Headers):
    """The httpx.Headers that `httpx.Headers(raw)` makes from byte pairs, built in one pass.

    The constructor sends each name and value through a normalising call with type checks (six
    calls a field, ~90 a request with its answer); for pairs already bytes it only lower-cases
    the name. This sets httpx's own field list (`_list`: raw name, lower name, value) directly,
    which is why httpx is pinned: tests/unit/test_httpx_outgoing.py checks it against the
    constructor. httpx.Request and httpx.Response copy a Headers they are given as it is."""

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        lower = _WIRE_LOWER
        self._list = [(name, lower[name], value) for name, value in raw]
        self._encoding = None


_TEXT_NAMES = {"host": b"Host", "content-length": b"Content-Length"}  # as the constructor adds


class _LazyWireHeaders(WireHeaders):
    """A WireHeaders whose httpx field list (`_list`) is made by `_made()` the first time it is
    read, for fields that are usually never read through httpx."""

    def __getattr__(self, name: str):
        if name != "_list":
            raise AttributeError(name)
        self._list = fields = self._made()
        return fields

    def _made(self) -> list[tuple[bytes, bytes, bytes]]:
        raise NotImplementedError


class TextWireHeaders(_LazyWireHeaders):
    """The WireHeaders of STR_FIELDS text, made from it the first time httpx's field list is
    read (a transport that takes the text never reads it). The text is the request's own dict,
    made per request, so what is made later is what was sent."""

    def __init__(self, text: dict[str, str]) -> None:
        self._text = text
        self._encoding = None

    def _made(self) -> list[tuple[bytes, bytes, bytes]]:
        names = _TEXT_NAMES
        return [(raw := names.get(k) or k.encode(), raw.lower(), v.encode())
                for k, v in self._text.items()]


class RawWireHeaders(_LazyWireHeaders):
    """The WireHeaders of an answer's byte pairs (aiohttp's `raw_headers`), with httpx's field
    list made from them the first time it is read. Until then `_raw` holds the pairs as
    received, which are what `raw` gives (HttpxUpstream reads them so, without the list);
    once the list is made `_raw` is dropped, so a change made through httpx cannot be missed."""

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._encoding = None

    def _made(self) -> list[tuple[bytes, bytes, bytes]]:
        lower = _WIRE_LOWER
        fields = [(key, lower[key], value) for key, value in self._raw]
        del self._raw
        return fields


def incoming_response(status: int, raw: Sequence[tuple[bytes, bytes]],
                      stream: httpx.AsyncByteStream, request: httpx.Request,
                      extensions: dict) -> httpx.Response:
    """What `httpx.Response(status, headers=WireHeaders(raw), stream=stream, request=request,
    extensions=extensions)` makes, its attributes set as that constructor sets them for a
    stream (it copies the fields and the extensions; these are made per answer, so they are
    taken as they are), the fields as RawWireHeaders."""
    answer = object.__new__(httpx.Response)
    answer.status_code = status
    answer.headers = RawWireHeaders(raw)
    answer._request = request
    answer.next_request = None
    answer.extensions = extensions
    answer.history = []
    answer.is_closed = False
    answer.is_stream_consumed = False
    answer.default_encoding = "utf-8"
    answer.stream = stream
    answer._num_bytes_downloaded = 0
    return answer
