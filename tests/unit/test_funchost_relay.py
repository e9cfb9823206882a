"""The host's read of a streamed answer from the worker's server: the idle limit between chunks.

A loopback server stands in for the worker's; the idle timer is fired by calling it with the
time it would see (`Answer._idle_check(now=...)`), so nothing here waits on a clock.
"""

import asyncio

import pytest

from funchost.relay import direct_sink
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


async def test_a_wait_is_over_at_its_due_time_whatever_the_clock_reads(worker):
    """At a loop time where (since + IDLE_S) - since rounds below IDLE_S, the check at the
    timer's own due time still ends the wait (it re-armed for that same time and hung)."""
    since = 15511.717760555666
    assert (since + IDLE_S) - since < IDLE_S  # the rounding this case is about
    answer, chunks = await open_answer(worker)
    reading = asyncio.ensure_future(anext(chunks))
    await waiting(answer)
    answer._waiting_since = since
    answer._idle_check(now=since + IDLE_S)
    assert answer.idle_expired
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


class Sink:
    """Stands in for the client's connection: takes chunks while `open`, keeps them in order."""

    def __init__(self) -> None:
        self.open = True
        self.taken: list[bytes] = []

    def __call__(self, data: bytes) -> bool:
        if self.open:
            self.taken.append(data)
        return self.open


async def until(condition) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_with_a_sink_chunks_go_to_it_without_waking_the_reader(worker):
    answer = await worker.request("GET", "/s", [(b"host", b"w")], None)
    sink = Sink()
    yielded = []

    async def read():
        async for piece in answer.chunks(IDLE_S, sink):
            yielded.append(piece)

    reading = asyncio.ensure_future(read())
    await waiting(answer)
    for n in range(3):
        worker.writes.put_nowait(b"data: %d\n\n" % n)
    expected = b"data: 0\n\ndata: 1\n\ndata: 2\n\n"  # what one read brought goes as one piece
    await until(lambda: b"".join(sink.taken) == expected)
    worker.writes.put_nowait(None)
    await reading
    assert b"".join(sink.taken) == expected
    assert yielded == []
    assert answer._connection.direct is None  # the body ended: nothing left installed
    answer.close()


async def test_what_the_sink_refuses_is_yielded_and_nothing_overtakes_it(worker):
    answer = await worker.request("GET", "/s", [(b"host", b"w")], None)
    sink = Sink()
    chunks = answer.chunks(IDLE_S, sink)
    sink.open = False  # the client's socket is full
    worker.writes.put_nowait(b"data: 1\n\n")
    assert await anext(chunks) == b"data: 1\n\n"  # the consumer holds it (sending it)
    sink.open = True
    worker.writes.put_nowait(b"data: 2\n\n")
    await until(lambda: answer._connection.chunks)
    assert sink.taken == []  # kept: written now, it would reach the client before data: 1
    assert await anext(chunks) == b"data: 2\n\n"
    reading = asyncio.ensure_future(anext(chunks, None))
    await waiting(answer)
    worker.writes.put_nowait(b"data: 3\n\n")
    await until(lambda: sink.taken)
    assert sink.taken == [b"data: 3\n\n"]
    worker.writes.put_nowait(None)
    assert await reading is None
    answer.close()


async def test_a_chunk_the_sink_takes_restarts_the_wait_for_the_next(worker):
    answer = await worker.request("GET", "/s", [(b"host", b"w")], None)
    sink = Sink()
    reading = asyncio.ensure_future(anext(answer.chunks(IDLE_S, sink), None))
    since = await waiting(answer)
    worker.writes.put_nowait(b"data: 1\n\n")
    await until(lambda: sink.taken)
    answer._idle_check(now=since + IDLE_S)  # the limit after the first wait, not this one
    assert not answer.idle_expired
    assert answer._waiting_since > since
    answer._idle_check(now=answer._waiting_since + IDLE_S)
    with pytest.raises(TimeoutError):
        await reading
    answer.close()


def test_the_direct_sink_is_for_uvicorns_chunked_answers_only():
    async def send(message):
        pass

    assert direct_sink(send) is None


class Transport:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        if self.fail:
            raise RuntimeError("closed under us")
        self.written.append(data)


def uvicorn_cycle(transport: Transport):
    """uvicorn's per-request object as it stands once a chunked answer's head went out."""
    from types import SimpleNamespace

    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    cycle = RequestResponseCycle.__new__(RequestResponseCycle)
    cycle.chunked_encoding, cycle.response_complete, cycle.disconnected = True, False, False
    cycle.transport, cycle.flow = transport, SimpleNamespace(write_paused=False)
    return cycle


def test_the_direct_sink_frames_a_chunk_and_refuses_while_the_client_cannot_take_it():
    transport = Transport()
    cycle = uvicorn_cycle(transport)
    sink = direct_sink(cycle.send)
    assert sink(b"data: 1\n\n") is True
    assert transport.written == [b"9\r\ndata: 1\n\n\r\n"]  # as uvicorn frames a chunk
    cycle.flow.write_paused = True  # the client's socket is full: send() will wait for it
    assert sink(b"data: 2\n\n") is False
    cycle.flow.write_paused, cycle.disconnected = False, True
    assert sink(b"data: 3\n\n") is False
    assert len(transport.written) == 1


def test_a_write_that_fails_leaves_the_chunk_with_the_reader():
    sink = direct_sink(uvicorn_cycle(Transport(fail=True)).send)
    assert sink(b"data: 1\n\n") is False


async def test_an_answer_keeps_its_end_to_end_fields_in_order_and_its_length():
    """The host relays Answer.headers as they are: names lower case, in the worker's order,
    repeated names kept, hop-by-hop fields left out as parsed; content_length is the first
    Content-Length (None without one)."""
    heads = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
             b"X-RateLimit-Limit: 9\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a\r\n"
             b"Set-Cookie: b\r\nRateLimit: \"global\";r=8;t=0\r\n\r\nok",
             HEAD + chunk(b"x") + b"0\r\n\r\n"]

    async def serve(reader, writer):
        while heads:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(heads.pop(0))
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    client = WorkerHttp("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        answer = await client.request("GET", "/a", [(b"host", b"w")], None)
        assert answer.headers == [(b"content-length", b"2"), (b"x-ratelimit-limit", b"9"),
                                  (b"set-cookie", b"a"), (b"set-cookie", b"b"),
                                  (b"ratelimit", b'"global";r=8;t=0')]
        assert answer.content_length == 2
        assert b"".join([c async for c in answer.chunks()]) == b"ok"
        answer.close()
        streamed = await client.request("GET", "/b", [(b"host", b"w")], None)
        assert streamed.headers == [(b"content-type", b"text/event-stream")]
        assert streamed.content_length is None
        assert b"".join([c async for c in streamed.chunks()]) == b"x"
        streamed.close()
    finally:
        client.close()
        server.close()
