"""The httpx upstream builds its httpx.Request once (issue #26) and must send exactly what
`httpx.Request(method, url, headers=..., content=body)` sent: the same header fields in the same
order and case, the same body, method, URL and extensions; a request naming Host or
Content-Length itself keeps the constructor's own path."""

import httpx
import pytest

from function_app.adapters.aiohttp_transport import aiohttp_headers
from function_app.adapters.httpx_messages import (
    STR_FIELDS,
    RawWireHeaders,
    WireHeaders,
    incoming_response,
    outgoing_request,
)
from function_app.http.headers import Headers

EXT = {"timeout": {"connect": 2.0, "read": None, "write": 10.0, "pool": 2.0}}
CASES = [
    ("POST", b'{"a": 1}', [(b"content-type", b"application/json"), (b"x-request-id", b"r1")]),
    ("POST", b"", [(b"accept", b"*/*")]),
    ("PUT", b"", []),
    ("PATCH", b"x", [(b"x-twice", b"1"), (b"x-twice", b"2")]),
    ("GET", b"", [(b"accept", b"text/plain")]),
    ("get", b"", [(b"x-latin1", b"caf\xe9")]),
    ("DELETE", b"body", []),
    ("HEAD", b"", []),
    ("POST", b"abc", [(b"host", b"elsewhere"), (b"content-length", b"3")]),
    ("POST", b"multipart", [(b"content-type", b"multipart/form-data; boundary=xyz")]),
]
URLS = ["http://127.0.0.1:8080/v1/a%2Fb/../c?q=%41 x", "https://backend.example:443/x",
        "http://[::1]:9000/"]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(("method", "body", "raw"), CASES)
async def test_the_request_is_the_one_the_constructor_makes(method, body, raw, url):
    parsed = httpx.URL(url)
    headers = Headers.from_raw(raw)
    ours = outgoing_request(method, parsed, headers, body, EXT)
    theirs = httpx.Request(method, parsed, headers=headers.raw(), content=body, extensions=EXT)
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert ours.headers.raw == theirs.headers.raw
    assert ours.headers._list == theirs.headers._list  # httpx's own representation
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    assert ours.headers.encoding == theirs.headers.encoding
    assert ours.content == theirs.content == body
    assert b"".join([chunk async for chunk in ours.stream]) == body
    assert ours.extensions == theirs.extensions


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(("method", "body", "raw"), CASES)
async def test_the_text_fields_are_what_the_transport_would_decode(method, body, raw, url):
    """With `str_fields` (the lean aiohttp transport), STR_FIELDS is exactly what
    `aiohttp_headers` would hand aiohttp for the constructor's request, present only when that
    is a dict (every field ASCII, no name twice); the httpx fields stay the constructor's."""
    parsed = httpx.URL(url)
    headers = Headers.from_raw(raw)
    ours = outgoing_request(method, parsed, headers, body, dict(EXT), str_fields=True)
    theirs = httpx.Request(method, parsed, headers=headers.raw(), content=body, extensions=EXT)
    decoded = aiohttp_headers(theirs.headers)
    if isinstance(decoded, dict) and "host" not in headers and "content-length" not in headers:
        text = ours.extensions[STR_FIELDS]
        assert text == decoded and list(text.items()) == list(decoded.items())  # same order
    else:
        assert STR_FIELDS not in ours.extensions
    assert ours.headers._list == theirs.headers._list
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    assert ours.headers.encoding == theirs.headers.encoding
    assert ours.method == theirs.method and ours.content == theirs.content == body


def test_the_httpx_fields_made_later_are_those_sent():
    """The httpx fields of a request sent as text are made only when read, from the text the
    transport was handed: a change to the gateway's headers afterwards (a retry's) is not in
    them."""
    headers = Headers([("x-a", "1")])
    ours = outgoing_request("POST", httpx.URL(URLS[0]), headers, b"{}", dict(EXT),
                            str_fields=True)
    headers.set("x-a", "2")
    assert ours.headers.get("x-a") == "1" == ours.extensions[STR_FIELDS]["x-a"]
    assert ours.headers.raw == [(b"Host", b"127.0.0.1:8080"), (b"x-a", b"1"),
                                (b"Content-Length", b"2")]


@pytest.mark.parametrize("raw", [
    [(b"Content-Type", b"text/plain"), (b"X-Twice", b"1"), (b"x-twice", b"2")],
    [(b"Set-Cookie", b"a=1"), (b"x-latin1", b"caf\xe9"), (b"x-utf8", "\u0113".encode())],
    [],
])
def test_wire_headers_are_the_headers_httpx_makes_from_the_same_pairs(raw):
    ours, theirs = WireHeaders(raw), httpx.Headers(raw)
    assert ours._list == theirs._list and ours == theirs
    assert ours.multi_items() == theirs.multi_items() and ours.encoding == theirs.encoding
    copied = httpx.Response(200, headers=WireHeaders(raw)).headers
    assert copied._list == theirs._list and copied.get_list("x-twice") == theirs.get_list("x-twice")


@pytest.mark.parametrize("url", [*URLS, "http://b\xfccher.example/x", "http://h/a b?c=%zz"])
def test_the_url_text_handed_to_the_transport_is_the_one_it_would_render(url):
    """URL_TEXT is `str(request.url)` of the request the upstream sends, made once per URL,
    and only for a transport that takes it (httpx's own pool renders the URL itself)."""
    from function_app.adapters.aiohttp_transport import LeanAiohttpTransport
    from function_app.adapters.httpx_upstream import HttpxUpstream

    parsed, host, url_text = HttpxUpstream(LeanAiohttpTransport())._url(url)
    sent = outgoing_request("POST", parsed, Headers(), b"{}", dict(EXT), host)
    assert url_text == str(sent.url) == str(httpx.Request("POST", url).url)
    assert HttpxUpstream(httpx.AsyncHTTPTransport())._url(url)[2] is None


@pytest.mark.parametrize("body", [b"abc", bytearray(b"abc"), b""])
def test_the_body_is_read_as_the_constructor_reads_it(body):
    ours = outgoing_request("POST", httpx.URL(URLS[0]), Headers(), body, dict(EXT))
    theirs = httpx.Request("POST", httpx.URL(URLS[0]), content=bytes(body))
    assert type(ours.content) is bytes and ours.content == theirs.content == ours.read()


RAW_ANSWERS = [
    ((b"Content-Type", b"application/json"), (b"X-Twice", b"1"), (b"x-twice", b"2")),
    ((b"Set-Cookie", b"a=1"), (b"x-latin1", b"caf\xe9"), (b"x-utf8", "\u0113".encode())),
    (),
]


@pytest.mark.parametrize("raw", RAW_ANSWERS)
async def test_the_answer_is_the_one_the_constructor_makes(raw):
    """incoming_response sets what httpx.Response's constructor sets for a stream, no more
    and no fewer attributes; its fields, made only when read, are the constructor's."""
    request = httpx.Request("GET", URLS[0])
    stream = httpx.ByteStream(b"ok")
    ours = incoming_response(201, raw, stream, request, {"http_version": b"HTTP/1.1"})
    theirs = httpx.Response(201, headers=WireHeaders(raw), stream=stream, request=request,
                            extensions={"http_version": b"HTTP/1.1"})
    mine, given = dict(vars(ours)), dict(vars(theirs))
    assert mine.pop("headers").raw == list(raw) == given.pop("headers").raw
    assert mine == given
    assert ours.headers._list == theirs.headers._list and ours.headers == theirs.headers
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    assert ours.request is request and ours.status_code == 201 and not ours.is_closed
    assert await ours.aread() == b"ok" and ours.is_stream_consumed
    await ours.aclose()
    assert ours.is_closed


def test_the_answer_pairs_are_read_as_received_until_httpx_fields_are_made():
    """HttpxUpstream reads `_raw` (the pairs as received) when it is there; once httpx's field
    list is made, a change through httpx shows in `raw` and `_raw` is gone."""
    headers = RawWireHeaders(RAW_ANSWERS[0])
    assert headers._raw is RAW_ANSWERS[0]
    headers["x-added"] = "1"
    assert not hasattr(headers, "_raw")
    assert headers.raw == [*RAW_ANSWERS[0], (b"x-added", b"1")]
