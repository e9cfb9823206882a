"""The host's read of a streamed answer from the worker's server: the idle limit between chunks.

A loopback server stands in for the worker's; the idle timer is fired by calling it with the
time it would see (`Answer._idle_check(now=...)`), so nothing here waits on a clock.
"""

import asyncio

import pytest

from funchost.workerhttp import WorkerHttp

IDLE_S = 3600.0
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
async def worker():
    """A server that answers every request with HEAD, then writes what the test puts in
    `worker.writes` (None closes the body)."""
    writes: asyncio.Queue = asyncio.Queue()

    async def serve(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD)
        while (data := await writes.get()) is not None:
            writer.write(chunk(data))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = WorkerHttp("127.0.0.1", port)
    client.writes = writes
    yield client
    client.close()
    server.close()


async def open_answer(worker):
    answer = await worker.request("GET", "/s", [(b"host", b"w")], None)
    return answer, answer.chunks(IDLE_S)


async def waiting(answer) -> float:
    """Let the reader reach its wait for the next bytes; the loop time it began waiting."""
    for _ in range(100):
        if answer._waiting_since is not None:
            return answer._waiting_since
        await asyncio.sleep(0)
    raise AssertionError("the reader never waited")


async def test_a_wait_for_the_worker_longer_than_the_limit_is_a_timeout(worker):
    answer, chunks = await open_answer(worker)
    worker.writes.put_nowait(b"data: 1\n\n")
    assert await anext(chunks) == b"data: 1\n\n"
    reading = asyncio.ensure_future(anext(chunks))
    since = await waiting(answer)
    answer._idle_check(now=since + IDLE_S)
    with pytest.raises(TimeoutError):
        await reading
    answer.close()


async def test_a_shorter_wait_re_arms_the_timer_for_when_that_wait_would_pass_the_limit(worker):
    answer, chunks = await open_answer(worker)
    reading = asyncio.ensure_future(anext(chunks))
    since = await waiting(answer)
    answer._idle_check(now=since + IDLE_S / 2)
    assert not answer.idle_expired
    assert answer._idle_timer.when() == pytest.approx(since + IDLE_S)
    worker.writes.put_nowait(b"data: 2\n\n")
    assert await reading == b"data: 2\n\n"
    answer.close()


async def test_time_the_consumer_holds_a_chunk_does_not_count(worker):
    answer, chunks = await open_answer(worker)
    worker.writes.put_nowait(b"data: 1\n\n")
    assert await anext(chunks) == b"data: 1\n\n"
    loop = asyncio.get_running_loop()
    answer._idle_check(now=loop.time() + 10 * IDLE_S)  # a client that stopped reading
    assert not answer.idle_expired
    worker.writes.put_nowait(b"data: 2\n\n")
    worker.writes.put_nowait(None)
    assert [c async for c in chunks] == [b"data: 2\n\n"]
    assert answer._idle_timer.cancelled()  # the body ended: no timer left behind
    answer.close()


async def test_without_a_limit_no_timer_is_armed(worker):
    answer = await worker.request("GET", "/s", [(b"host", b"w")], None)
    worker.writes.put_nowait(b"a")
    worker.writes.put_nowait(None)
    assert await answer.read() == b"a"
    assert answer._idle_timer is None
    answer.close()
