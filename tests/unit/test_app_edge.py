"""The HTTP edge in app.py: the worker's Starlette request becomes a GatewayRequest, its body is
read from the ASGI `receive`, and a GatewayResponse becomes the Starlette response the worker's
server sends. Each is compared with what the code it replaced made (Starlette's own Response
constructor, Request.stream())."""

import asyncio
from urllib.parse import quote

import pytest
from starlette.requests import Request
from starlette.responses import Response

from function_app.app import (
    ClosingStreamingResponse,
    DirectResponse,
    _read_body,
    to_gateway_request,
    to_response,
)
from function_app.core.errors import ClientDisconnected, PayloadTooLarge
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse, Unread

FIELDS = [
    [],
    [("content-type", "application/json"), ("x-request-id", "r-1")],
    [("Content-Length", "999"), ("content-type", "text/plain")],  # the answer's own length
    [("set-cookie", "a=1"), ("x-a", "1"), ("Set-Cookie", "b=2")],  # a repeated name
    [("x-latin", "caf\u00e9"), ("x-wide", "\u00e9\u20ac\u2603")],  # latin-1 and wider
    [("RateLimit", '"requests";r=9;t=1'), ("RateLimit-Policy", '"requests";q=10;w=1')],
]
STATUSES = [100, 101, 200, 201, 204, 206, 304, 404, 413, 500, 503]
BODIES = [b"", b"{}", b'{"error": {"code": "x"}}', "\u00e9".encode() * 300]


def _before(answer: GatewayResponse) -> Response:
    """to_response as it was: Starlette's constructor, the answer's fields without its
    Content-Length appended."""
    headers = answer.headers
    response = Response(content=answer.body, status_code=answer.status)
    if "content-length" in headers:
        headers = headers.without(("content-length",))
    response.raw_headers.extend(headers.raw())
    return response


@pytest.mark.parametrize("fields", FIELDS)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("body", BODIES)
def test_a_bytes_answer_is_the_response_starlettes_constructor_made(fields, status, body):
    made = to_response(GatewayResponse(status, Headers(fields), body))
    expected = _before(GatewayResponse(status, Headers(fields), body))
    assert type(made) is DirectResponse and isinstance(made, Response)
    assert vars(made) == vars(expected)  # status, body, background, raw_headers: all of them
    assert made.body is body  # no copy of the body
    lengths = [v for k, v in made.raw_headers if k == b"content-length"]
    assert lengths == ([] if status < 200 or status in (204, 304) else [b"%d" % len(body)])


def test_the_answers_fields_reach_the_server_as_wire_bytes_in_order_none_dropped():
    fields = [("X-Request-ID", "r-9"), ("set-cookie", "a=1"), ("content-type", "text/plain"),
              ("set-cookie", "b=2"), ("x-wide", "\u20ac")]
    made = to_response(GatewayResponse(200, Headers(fields), b"hi"))
    assert made.raw_headers == [
        (b"content-length", b"2"), (b"x-request-id", b"r-9"), (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"), (b"content-type", b"text/plain"),
        (b"x-wide", "\u20ac".encode())]
    assert made.headers.getlist("set-cookie") == ["a=1", "b=2"]  # Starlette reads them back


def test_a_bytearray_body_goes_out_as_bytes():
    made = to_response(GatewayResponse(200, Headers(), bytearray(b"abc")))
    assert made.body == b"abc" and type(made.body) is bytes
    assert (b"content-length", b"3") in made.raw_headers


async def test_a_made_response_sends_what_starlettes_sends():
    sent = {}
    for name, make in (("made", to_response), ("before", _before)):
        messages = []

        async def send(message, into=messages):
            into.append(message)

        await make(GatewayResponse(201, Headers(FIELDS[3]), b"ok"))({"type": "http"}, None, send)
        sent[name] = messages
    assert sent["made"] == sent["before"]


def test_a_streamed_answer_keeps_every_field_its_length_included():
    async def body():
        yield b"x"

    fields = [("content-type", "text/event-stream"), ("content-length", "1"), ("x-a", "\u00e9")]
    made = to_response(GatewayResponse(200, Headers(fields), body()))
    assert isinstance(made, ClosingStreamingResponse)
    assert made.raw_headers == [(b"content-type", b"text/event-stream"),
                                (b"content-length", b"1"), (b"x-a", "\u00e9".encode("latin-1"))]


def _receiver(messages: list[dict]):
    """An ASGI receive giving `messages` in turn; records how many were asked for."""
    asked = []

    async def receive():
        asked.append(True)
        return messages[len(asked) - 1]

    return receive, asked


async def _streamed(messages: list[dict], cap: int) -> bytes:
    """What Request.stream() read, with the cap applied as the edge applied it before."""
    receive, _ = _receiver(messages)
    chunks, size = [], 0
    async for chunk in Request({"type": "http"}, receive).stream():
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


BODY_MESSAGES = [
    [{"type": "http.request", "body": b'{"a": 1}', "more_body": False}],
    [{"type": "http.request", "body": b"ab", "more_body": True},
     {"type": "http.request", "body": b"", "more_body": True},
     {"type": "http.request", "body": b"cd", "more_body": False}],
    [{"type": "http.request"}],  # no body, no more_body: an empty body
    [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.request"}],
    [{"type": "http.request", "body": b"", "more_body": False}],
]


@pytest.mark.parametrize("messages", BODY_MESSAGES)
async def test_the_body_read_from_receive_is_what_request_stream_gave(messages):
    receive, asked = _receiver(messages)
    body = await _read_body(receive, 1000)
    assert body == await _streamed(messages, 1000)
    assert type(body) is bytes
    assert len(asked) == len(messages)  # nothing read past the last message


async def test_a_one_message_body_is_that_messages_bytes():
    data = b'{"prompt": "hi"}'
    receive, _ = _receiver([{"type": "http.request", "body": data, "more_body": False}])
    assert await _read_body(receive, 100) is data


async def test_reading_stops_at_the_message_that_passes_the_cap():
    messages = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 5
    receive, asked = _receiver(messages)
    with pytest.raises(PayloadTooLarge):
        await _read_body(receive, 100)
    assert len(asked) == 2
    with pytest.raises(PayloadTooLarge):
        await _streamed(messages, 100)


async def test_a_client_gone_mid_body_is_client_disconnected():
    receive, _ = _receiver([{"type": "http.request", "body": b"ab", "more_body": True},
                            {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnected):
        await _read_body(receive, 100)


def _scope(**changes) -> dict:
    scope = {"type": "http", "http_version": "1.1", "method": "POST", "path": "/a b/%2F",
             "raw_path": b"/a%20b/%252F", "query_string": b"x=1&y=%C3%A9",
             "headers": [(b"content-type", b"application/json"), (b"x-a", b"1"),
                         (b"x-a", b"2"), (b"x-latin", "caf\u00e9".encode("latin-1"))],
             "client": ("198.51.100.4", 50000), "scheme": "https"}
    return {**scope, **changes}


async def test_the_gateway_request_holds_the_scope_as_it_came():
    receive, _ = _receiver([{"type": "http.request", "body": b"{}", "more_body": False}])
    request = to_gateway_request(Request(_scope(), receive))
    assert (request.method, request.path, request.raw_path, request.query, request.scheme,
            request.client_host) == ("POST", "/a b/%2F", "/a%20b/%252F", "x=1&y=%C3%A9",
                                     "https", "198.51.100.4")
    assert list(request.headers) == [("content-type", "application/json"), ("x-a", "1"),
                                     ("x-a", "2"), ("x-latin", "caf\u00e9")]
    assert isinstance(request.body, Unread)
    assert await request.body.read(10) == b"{}"


def test_a_scope_without_raw_path_client_query_or_scheme_takes_the_defaults():
    scope = _scope()
    for key in ("raw_path", "client", "query_string", "scheme"):
        del scope[key]
    request = to_gateway_request(Request(scope))
    assert request.raw_path == quote("/a b/%2F", safe="/" + "!$&'()*+,;=:@-._~")
    assert (request.query, request.client_host, request.scheme) == ("", "", "http")


def test_an_empty_raw_path_falls_back_to_the_path():
    request = to_gateway_request(Request(_scope(raw_path=b"", path="/p")))
    assert request.raw_path == "/p"


async def test_the_body_stage_reads_the_body_once_through_the_edge():
    messages = [{"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"c", "more_body": False}]
    receive, asked = _receiver(messages)
    request = to_gateway_request(Request(_scope(), receive))
    assert await asyncio.wait_for(request.body.read(3), 1) == b"abc"
    assert len(asked) == 2
