"""Deadlines that run while nobody reads, pool exhaustion as 503, probes with their own pool.

Real transports against real sockets on loopback; the tests wait for conditions (a connection
closed, a slot taken), bounded only so that a regression fails instead of hanging.
"""

import asyncio
import json

import pytest

from function_app.adapters.upstreams import open_upstream
from function_app.core.errors import Overloaded
from function_app.core.upstream import UpstreamRequest
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway

TRANSPORTS = ["aiohttp-direct", "aiohttp", "httpx"]  # UPSTREAM_CLIENT values


class EndlessStream:
    """A backend that answers /healthz at once and streams every other path forever."""

    def __init__(self):
        self.open = 0
        self.closed = asyncio.Event()

    async def __call__(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET /healthz"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()
            return
        self.open += 1
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")  # fills the client's buffers
                await writer.drain()
                await asyncio.sleep(0.01)
        except (ConnectionError, OSError):
            self.open -= 1
            self.closed.set()


async def serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def streamed(port: int, timeout_s: float, connect_s: float = 1.0) -> UpstreamRequest:
    return UpstreamRequest("GET", f"http://127.0.0.1:{port}/stream", Headers(), b"", connect_s,
                           timeout_s)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_stream_nobody_reads_is_closed_at_its_deadline(kind):
    backend = EndlessStream()
    server, port = await serve(backend)
    upstream = open_upstream(kind, 4)
    async with server:
        answer = await upstream.send(streamed(port, timeout_s=0.5))
        body = aiter(answer.body)
        await anext(body)  # the client reads one chunk, then stops reading
        await asyncio.wait_for(backend.closed.wait(), 20)
        assert backend.open == 0
        await upstream.aclose()


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_full_pool_is_503_overloaded_with_retry_after(kind):
    backend = EndlessStream()
    server, port = await serve(backend)
    upstream = open_upstream(kind, 1)
    async with server:
        held = await upstream.send(streamed(port, timeout_s=30))
        with pytest.raises(Overloaded) as caught:
            await upstream.send(streamed(port, timeout_s=30, connect_s=0.2))
        assert caught.value.status == 503 and caught.value.code == "overloaded"
        assert caught.value.headers["Retry-After"] == "1"
        await held.body.aclose()  # the slot comes back: the next request gets through
        again = await upstream.send(streamed(port, timeout_s=30, connect_s=5))
        await again.body.aclose()
        await upstream.aclose()


async def test_healthz_reports_a_backend_up_while_streams_fill_the_pool():
    backend = EndlessStream()
    server, port = await serve(backend)
    routes = [{"path": "/s/*", "methods": ["GET"], "backend": "python", "upstream_path": "/"}]
    settings = load_settings({"PY_SERVICE_URL": f"http://127.0.0.1:{port}",
                              "NODE_SERVICE_URL": f"http://127.0.0.1:{port}",
                              "GATEWAY_ROUTES": json.dumps(routes),
                              "UPSTREAM_MAX_CONNECTIONS": "2", "UPSTREAM_CONNECT_TIMEOUT_S": "0.3",
                              "RATE_LIMIT_ENABLED": "false"})
    async with server:
        gateway = await build_gateway(settings)
        held = []
        for _ in range(2):
            answer = await gateway.serve(GatewayRequest("GET", "/s/x", "", Headers(), b"",
                                                        "127.0.0.1", raw_path="/s/x"))
            assert answer.status == 200
            held.append(answer)
        refused = await gateway.serve(GatewayRequest("GET", "/s/y", "", Headers(), b"", "127.0.0.1",
                                                     raw_path="/s/y"))
        assert refused.status == 503
        assert ("Retry-After", "1") in refused.headers
        report = await gateway.health.report()
        assert report["backends"]["python"]["ok"] is True
        for answer in held:
            await answer.body.aclose()
        await gateway.aclose()
