"""The direct aiohttp upstream sends a backend the same request line and header bytes as httpx
over the httpx-aiohttp transport did before it (issue #26): the URL as httpx normalised it, and a
header value with bytes beyond ASCII decoded the way httpx decoded it (UTF-8 kept, a lone latin-1
byte sent as its UTF-8 form). Header order and the case of the names the clients add differ,
which HTTP gives no meaning to; the test compares names in lower case."""

import asyncio

import pytest

from function_app.adapters.upstreams import open_upstream
from function_app.core.upstream import UpstreamRequest
from function_app.http.headers import Headers


class Recorder:
    """Keeps each request's head (request line and headers) and answers 200 with a body."""

    def __init__(self):
        self.heads: list[bytes] = []

    async def __call__(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        self.heads.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n"
                     b"x-twice: 1\r\nx-twice: 2\r\n\r\nok")
        await writer.drain()
        writer.close()


def seen(head: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    line, *fields = head.rstrip(b"\r\n").split(b"\r\n")
    return line, {k.strip().lower(): v.strip() for k, v in (f.split(b":", 1) for f in fields)}


# (method, body, header pairs as the gateway holds them: latin-1 text of the bytes received)
CASES = [
    ("POST", b'{"a": 1}', [("content-type", "application/json")]),
    ("POST", b"", []),
    ("GET", b"", [("accept", "text/plain")]),
    ("GET", b"", [("x-utf8", b"caf\xc3\xa9".decode("latin-1"))]),
    ("GET", b"", [("x-latin1", "caf\xe9")]),
    ("GET", b"", [("x-wide", "\u20ac")]),  # a value the gateway made itself, wider than latin-1
]


@pytest.mark.parametrize(("method", "body", "pairs"), CASES)
async def test_the_backend_sees_what_the_httpx_path_sent(method, body, pairs):
    recorder = Recorder()
    server = await asyncio.start_server(recorder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/a%2Fb/../c?q=%41 x"
    answers = []
    async with server:
        for kind in ("aiohttp-direct", "aiohttp"):
            upstream = open_upstream(kind, 4)
            answer = await upstream.send(UpstreamRequest(method, url, Headers(pairs), body, 2.0,
                                                         10.0))
            answers.append((answer.status, list(answer.headers),
                            b"".join([chunk async for chunk in answer.body])))
            await upstream.aclose()
    direct, before = (seen(head) for head in recorder.heads)
    assert direct == before
    assert answers[0] == answers[1]
    assert answers[0][1].count(("x-twice", "1")) == 1 and ("x-twice", "2") in answers[0][1]


async def test_a_utf8_value_reaches_the_backend_unchanged():
    recorder = Recorder()
    server = await asyncio.start_server(recorder, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        upstream = open_upstream("aiohttp-direct", 4)
        answer = await upstream.send(UpstreamRequest(
            "GET", f"http://127.0.0.1:{port}/", Headers([("x-utf8", "caf\xc3\xa9")]), b"", 2.0,
            10.0))
        await answer.body.aclose()
        await upstream.aclose()
    assert seen(recorder.heads[0])[1][b"x-utf8"] == "café".encode()
