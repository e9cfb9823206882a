"""Failure classification of the real transports against real sockets on loopback: the variants
the shared contract (tests/contract/test_upstream_contract.py, which also has a silent backend
and a stalled body) does not script, such as a reset while the request is still being sent and
a reset mid-body."""

import asyncio

import pytest

from function_app.adapters.upstreams import open_upstream
from function_app.core.errors import UpstreamError, UpstreamTimeout
from function_app.core.upstream import UpstreamRequest
from function_app.http.headers import Headers
from scripts.procs import free_port

TRANSPORTS = ["aiohttp-direct", "aiohttp", "httpx"]  # UPSTREAM_CLIENT values


async def serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def request(port: int, timeout_s: float = 5.0) -> UpstreamRequest:
    return UpstreamRequest("POST", f"http://127.0.0.1:{port}/infer", Headers(), b"{}", 1.0,
                           timeout_s)


@pytest.fixture(params=TRANSPORTS)
async def upstream(request):
    client = open_upstream(request.param, 8)
    yield client
    await client.aclose()


async def test_refused_connection_is_502(upstream):
    with pytest.raises(UpstreamError):
        await upstream.send(request(free_port()))


async def test_reset_before_answering_is_502_not_504(upstream):
    async def reset(reader, writer):
        await reader.readline()
        writer.transport.abort()

    server, port = await serve(reset)
    async with server:
        with pytest.raises(UpstreamError) as caught:
            await upstream.send(request(port))
    assert not isinstance(caught.value, UpstreamTimeout)


async def test_body_is_streamed_and_a_cut_stream_raises(upstream):
    async def half(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    server, port = await serve(half)
    async with server:
        answer = await upstream.send(request(port))
        assert answer.status == 200
        received = []
        with pytest.raises(UpstreamError):
            async for chunk in answer.body:
                received.append(chunk)
    assert b"".join(received) == b"first"
