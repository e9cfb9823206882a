"""The upstream client keeps no cookies: a Set-Cookie a backend sends in answer to one client
must never ride on another client's request (the client's own Cookie header is forwarded as it
is, and nothing else). The backend is addressed by a host name (localhost), for which a cookie
jar would store cookies; against an IP address one would silently refuse them."""

import asyncio

import pytest

from function_app.adapters.upstreams import open_upstream
from function_app.core.upstream import UpstreamRequest
from function_app.http.headers import Headers

TRANSPORTS = ["aiohttp-direct", "aiohttp", "httpx"]  # UPSTREAM_CLIENT values


class CookieSetter:
    """Answers every request with a Set-Cookie and keeps each request's Cookie header."""

    def __init__(self):
        self.cookies: list[str | None] = []

    async def __call__(self, reader, writer):
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed its connection
            fields = dict(line.split(": ", 1) for line in
                          head.decode("latin-1").split("\r\n")[1:] if ": " in line)
            fields = {k.lower(): v for k, v in fields.items()}
            await reader.readexactly(int(fields.get("content-length", "0")))
            self.cookies.append(fields.get("cookie"))
            writer.write(b"HTTP/1.1 200 OK\r\nset-cookie: session=client-a; Path=/\r\n"
                         b"content-length: 2\r\n\r\nok")
            await writer.drain()


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_backends_cookie_is_not_sent_on_the_next_request(kind):
    backend = CookieSetter()
    server = await asyncio.start_server(backend, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = open_upstream(kind, 8)
    async with server:
        try:
            for headers in (Headers(), Headers(), Headers([("cookie", "mine=1")])):
                answer = await upstream.send(UpstreamRequest(
                    "POST", f"http://localhost:{port}/infer", headers, b"{}", 2.0, 5.0))
                assert [chunk async for chunk in answer.body] == [b"ok"]
        finally:
            await upstream.aclose()  # before the server waits for its connections to close
    assert backend.cookies == [None, None, "mine=1"]
