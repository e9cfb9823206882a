"""Failure classification of the real transports against real sockets on loopback: the variants
the shared contract (tests/contract/test_upstream_contract.py, which also has a silent backend
and a stalled body) does not script, such as a reset while the request is still being sent and
a reset mid-body."""

import asyncio
import contextlib
import gc
import sys

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


@contextlib.contextmanager
def loop_finalised():
    """The async generators that reach the event loop's finaliser hook (dropped unclosed):
    each costs the loop a task and a wake-up. Entered inside the running loop (which sets its
    own hooks whenever it starts running), for generators first iterated after that."""
    hooks = sys.get_asyncgen_hooks()
    finalised = []

    def finalizer(agen):
        finalised.append(agen.__qualname__)
        hooks.finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)
    try:
        yield finalised
    finally:
        sys.set_asyncgen_hooks(*hooks)


@pytest.mark.parametrize("whole", [True, False], ids=["first-chunk-then-closed", "read-to-end"])
@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_an_answer_leaves_no_generator_for_the_loop_to_finalise(kind, whole):
    async def sized(reader, writer):  # keep-alive: one answer per request until the client goes
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(2)  # the request's body, b"{}"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                await writer.drain()
        writer.close()

    server, port = await serve(sized)
    upstream = open_upstream(kind, 8)
    iterated = []  # what each answer's body read from: the transport's stream, as iterated
    try:
        with loop_finalised() as finalised:
            for _ in range(3):
                answer = await upstream.send(request(port))
                iterated.append(answer.body._chunks)
                if whole:  # as routing/answer_body.complete_body reads a sized answer
                    assert await anext(answer.body) == b"hello"
                    await answer.body.aclose()
                else:
                    assert b"".join([chunk async for chunk in answer.body]) == b"hello"
                del answer
            gc.collect()
    finally:
        await upstream.aclose()
        server.close()
    for chunks in iterated:  # a generator is closed (no frame), not left to the loop
        assert getattr(chunks, "ag_frame", None) is None
        assert getattr(chunks, "__qualname__", "") not in finalised
    if kind != "httpx":  # httpx's own pool leaves httpcore's inner generators to the loop
        assert finalised == []


async def test_httpx_over_aiohttp_reads_the_body_from_aiohttps_reader():
    """The streamed path skips httpx-aiohttp's generator (adapters/httpx_upstream.body_chunks);
    if that library renames what it wraps, the fallback is taken and this says so."""
    from function_app.adapters.deadline_body import Reads

    async def two_chunks(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    client = open_upstream("aiohttp", 8)
    server, port = await serve(two_chunks)
    try:
        async with server:
            answer = await client.send(request(port))
            assert isinstance(answer.body._chunks, Reads)
            assert b"".join([chunk async for chunk in answer.body]) == b"firstsecond"
    finally:
        await client.aclose()


@pytest.mark.parametrize("whole", [True, False], ids=["first-chunk-then-closed", "read-to-end"])
@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])  # the httpx-transport upstreams
async def test_closing_an_answer_gives_its_connection_back_for_the_next(kind, whole):
    """Closing the body closes the answer (HttpxUpstream's closer): its connection goes back to
    the pool, so three exchanges in turn use one connection, and the slot is freed each time
    (a pool of one would otherwise refuse the second). httpx's own pool closes a connection
    whose answer was not read to its end rather than reading the rest: one each then."""
    connections = []

    async def sized(reader, writer):
        connections.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(2)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                await writer.drain()
        writer.close()

    server, port = await serve(sized)
    upstream = open_upstream(kind, 1)
    try:
        for _ in range(3):
            answer = await upstream.send(request(port))
            if whole:
                assert await anext(answer.body) == b"hello"
            else:
                assert b"".join([chunk async for chunk in answer.body]) == b"hello"
            await answer.body.aclose()
    finally:
        await upstream.aclose()
        server.close()
    assert len(connections) == (3 if kind == "httpx" and whole else 1)


async def test_every_upstream_pool_shares_one_verifying_tls_context() -> None:
    """One client TLS context per process (each loads the CA bundle again): the aiohttp
    transport, its session's connector, httpx's own pool and the aiohttp-direct client all hold
    the same one, and it still verifies certificates and host names."""
    import ssl

    from function_app.adapters import aiohttp_upstream, httpx_upstream

    context = httpx_upstream.tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's bundle is loaded
    lean = httpx_upstream.make_transport("aiohttp", 4)
    assert lean.ssl_context is context
    own = httpx_upstream.make_transport("httpx", 4)
    assert own._pool._ssl_context is context
    session = httpx_upstream._session(4, 4.0)
    direct = aiohttp_upstream.AiohttpUpstream(4)
    try:
        assert session.connector._ssl is context
        assert direct._client().connector._ssl is context
    finally:
        await session.close()
        await direct._client().close()
        await own.aclose()
