"""aiohttp's client connections skip the resume call per body read only while reading is not
paused (function_app/adapters/aiohttp_resume.py): a body that never pauses its connection makes
no call into aiohttp's resume, one that does is resumed and read whole, and the pinned aiohttp
takes that path in both upstream adapters. A local server on 127.0.0.1 sends the bodies."""

import asyncio
import functools

import aiohttp
import pytest
from aiohttp.client_proto import ResponseHandler

from function_app.adapters import aiohttp_resume
from function_app.adapters.aiohttp_resume import QuietResumeHandler, quiet_resume
from function_app.adapters.aiohttp_upstream import AiohttpUpstream
from function_app.adapters.httpx_upstream import _session


class ChunkServer:
    """Answers one chunked response per connection: the chunks put in `chunks`, one HTTP chunk
    each, until None; `burst` sends them all at once instead."""

    def __init__(self, burst: list[bytes] | None = None) -> None:
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.burst = burst

    async def __call__(self, reader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                     b"content-type: text/event-stream\r\n\r\n")
        if self.burst is not None:
            writer.write(b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in self.burst))
        else:
            while (chunk := await self.chunks.get()) is not None:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
def base_resumes(monkeypatch):
    """Counts the calls that reach aiohttp's own ResponseHandler.resume_reading."""
    calls = []
    original = ResponseHandler.resume_reading

    def counted(self, resume_parser=True):
        calls.append(self._reading_paused)
        original(self, resume_parser)

    monkeypatch.setattr(ResponseHandler, "resume_reading", counted)
    return calls


def _session_with(quiet: bool, **kwargs) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector()
    if quiet:
        assert quiet_resume(connector)
    return aiohttp.ClientSession(connector=connector, **kwargs)


async def _stream(server: ChunkServer, session: aiohttp.ClientSession, events: int) -> list[bytes]:
    """Each event sent only once the one before it was read: the connection never pauses."""
    listener = await asyncio.start_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    got = []
    async with listener, session, session.get(f"http://127.0.0.1:{port}/") as response:
        for i in range(events):
            await server.chunks.put(b"data: %d\n\n" % i)
            got.append(await response.content.readany())
        await server.chunks.put(None)
        assert await response.content.readany() == b""
    return got


@pytest.mark.parametrize("quiet", [False, True])
async def test_a_stream_that_never_pauses_makes_no_resume_call_when_quiet(quiet, base_resumes):
    got = await _stream(ChunkServer(), _session_with(quiet), 20)
    assert got == [b"data: %d\n\n" % i for i in range(20)]
    if quiet:
        assert base_resumes == []
    else:  # aiohttp's own path: a resume call per read, none of them paused
        assert len(base_resumes) >= 20 and not any(base_resumes)


async def test_a_paused_connection_is_resumed_and_the_body_arrives_whole(base_resumes):
    body = [b"data: %05d\n\n" % i for i in range(4000)]  # ~50 KB in one burst
    listener = await asyncio.start_server(ChunkServer(burst=body), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    session = _session_with(True, read_bufsize=256)  # pauses past 512 bytes buffered
    got = []
    async with listener, session, session.get(f"http://127.0.0.1:{port}/") as response:
        assert isinstance(response.connection.protocol, QuietResumeHandler)
        while chunk := await response.content.readany():
            got.append(chunk)
            await asyncio.sleep(0)  # let the reader fill up again
    assert b"".join(got) == b"".join(body)
    assert base_resumes and all(base_resumes)  # every call that reached aiohttp was paused


async def test_both_upstream_adapters_take_the_quiet_path_with_the_pinned_aiohttp():
    assert aiohttp_resume.INTERNALS_AS_READ, aiohttp.__version__
    session = _session(4, 4.0)
    direct = AiohttpUpstream(4)
    try:
        for connector in (session.connector, direct._client().connector):
            assert connector._factory.func is QuietResumeHandler
    finally:
        await session.close()
        await direct.aclose()


async def test_an_unknown_version_or_factory_leaves_the_connector_as_it_was(monkeypatch):
    connector = aiohttp.TCPConnector()
    try:
        monkeypatch.setattr(aiohttp_resume, "INTERNALS_AS_READ", False)
        assert not quiet_resume(connector)
        assert connector._factory.func is ResponseHandler
        monkeypatch.setattr(aiohttp_resume, "INTERNALS_AS_READ", True)
        other = connector._factory = functools.partial(ResponseHandler, asyncio.get_running_loop())
        assert not quiet_resume(connector)
        assert connector._factory is other
    finally:
        await connector.close()


def test_the_self_check_refuses_an_unread_version(monkeypatch):
    monkeypatch.setattr(aiohttp, "__version__", "3.99.0")
    assert not aiohttp_resume._internals_as_read()
