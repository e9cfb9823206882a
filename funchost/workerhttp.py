"""HTTP/1.1 from the host to the worker's server: keep-alive connections on asyncio protocols with
httptools' response parser, and nothing else.

The host forwards every request to one local server it knows, so a general client's machinery
(cookies, redirects, per-request timers, URL objects) is pure cost: py-spy put aiohttp's client
at about 40 % of the host's CPU. Bodies stream both ways: a request body may be an async iterator
(sent chunked, pausing while the socket is full), and the answer is read chunk by chunk with the
socket paused while more than READ_AHEAD bytes wait unread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httptools

READ_AHEAD = 256 * 1024
# Fields of one connection, never relayed: the answer's `headers` leave them out as parsed.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                        b"upgrade", b"proxy-connection"})
IDLE_S = 3.0  # uvicorn closes idle keep-alive connections after 5 s; reuse only younger ones


class WorkerConnectionError(ConnectionError):
    """The connection to the worker's server failed or closed before the answer ended."""


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.idle_since = 0.0
        self._begin()

    def _begin(self) -> None:
        self.head: asyncio.Future = self.loop.create_future()
        self.headers: list[tuple[bytes, bytes]] = []  # end-to-end fields, names lower case
        self.length: bytes | None = None  # the first Content-Length value
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.event = asyncio.Event()
        # Set while an answer relays its body straight to the client (Answer.chunks' `sink`):
        # takes what a read brought and says whether it went out; else the reader is woken.
        self.direct: Callable[[], bool] | None = None

    # asyncio.Protocol
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.head.done():
            self.head.set_exception(WorkerConnectionError("the worker closed the connection"))
        self.writable.set()
        self.event.set()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.head.done():
                self.head.set_exception(WorkerConnectionError(f"bad answer: {exc}"))
            self.transport.close()
            return
        direct = self.direct
        if direct is not None and self.chunks and not direct():
            self.event.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        # One pass per field, as httptools hands it over: the host relays the end-to-end
        # fields as they are and needs only Content-Length of the rest, so neither is looked
        # for again in the list (load/instructions_per_request.py --process host).
        name = name.lower()
        if name not in HOP_BY_HOP:
            self.headers.append((name, value))
            if name == b"content-length" and self.length is None:
                self.length = value

    def on_headers_complete(self) -> None:
        if not self.head.done():
            self.head.set_result(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > READ_AHEAD:
            self.transport.pause_reading()
        if self.direct is None:  # else data_received hands this read's chunks on at its end
            self.event.set()

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()  # reset once the parser moves on
        self.complete = True
        self.event.set()


class Answer:
    """The worker server's answer: status and headers now, the body as it comes."""

    def __init__(self, client: WorkerHttp, connection: _Connection, status: int, head_only: bool):
        self.status = status
        self.headers = connection.headers
        self._client = client
        self._connection = connection
        self._head_only = head_only
        self.content_length = None if connection.length is None else int(connection.length)
        self.idle_expired = False
        self._idle_s = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None
        self._sink: Callable[[bytes], bool] | None = None
        self._holding = False  # the consumer has a yielded piece it has not finished with

    async def chunks(self, idle_s: float | None = None,
                     sink: Callable[[bytes], bool] | None = None) -> AsyncIterator[bytes]:
        """The body as it comes (what arrived since the last read, in one piece). With `idle_s`,
        TimeoutError once a wait for the worker's next bytes has lasted `idle_s`; the time the
        consumer spends between reads (a slow client) does not count.

        One timer per answer, re-armed only when it fires early (`_idle_check`), instead of a
        timeout armed and disarmed around every chunk: with hundreds of streams that was a
        few percent of the host's CPU (load/profile_streams.py).

        With `sink`, what each read from the worker brings goes to `sink(data)` from the
        connection's callback while this generator waits, instead of waking it: no task step,
        no event and no ASGI send per chunk. `sink` returns False when it cannot take the data
        now (the client is slow or gone); the data is then yielded here, in order, and `sink`
        is not offered anything while the consumer holds a yielded piece."""
        connection = self._connection
        if self._head_only:
            return
        if idle_s is not None:
            self._idle_s = idle_s
            self._idle_timer = connection.loop.call_later(idle_s, self._idle_check)
        if sink is not None:
            self._sink = sink
            connection.direct = self._direct
        try:
            while True:
                if connection.chunks:
                    chunks = connection.chunks
                    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    chunks.clear()
                    if connection.buffered > READ_AHEAD:
                        connection.transport.resume_reading()
                    connection.buffered = 0
                    self._holding = True
                    yield data
                    self._holding = False
                elif connection.complete:
                    return
                elif connection.lost:
                    raise WorkerConnectionError("the worker closed the connection mid-answer")
                elif self.idle_expired:
                    raise TimeoutError(f"no data from the worker for {self._idle_s} s")
                else:
                    await self._wait(connection)
        finally:
            connection.direct = None
            if self._idle_timer is not None:
                self._idle_timer.cancel()

    def _direct(self) -> bool:
        """The connection's buffered chunks to the sink; False (kept) when it cannot take them
        or a piece yielded before is still being sent (they would overtake it)."""
        connection = self._connection
        if self._holding or connection is None:
            return False
        chunks = connection.chunks
        if not self._sink(chunks[0] if len(chunks) == 1 else b"".join(chunks)):
            return False
        chunks.clear()
        if connection.buffered > READ_AHEAD:
            connection.transport.resume_reading()
        connection.buffered = 0
        if self._waiting_since is not None:  # the wait for the worker's next bytes restarts
            self._waiting_since = connection.loop.time()
        return True

    async def _wait(self, connection: _Connection) -> None:
        """Until the connection has news; the idle timer reads when this wait began."""
        connection.event.clear()
        self._waiting_since = connection.loop.time()
        try:
            await connection.event.wait()
        finally:
            self._waiting_since = None

    def _idle_check(self, now: float | None = None) -> None:
        """The idle timer: ends a wait that has lasted `idle_s`, else fires again when the
        current wait (or, while the consumer holds a chunk, a wait starting now) would."""
        connection = self._connection
        if connection is None:
            return
        now = connection.loop.time() if now is None else now
        since = self._waiting_since
        due = (since if since is not None else now) + self._idle_s
        # `now >= due`, not `now - since >= idle_s`: the timer is armed for `due`, and
        # (since + idle_s) - since can round below idle_s, which re-armed a timer for the
        # very time it fired at, and a wait due now never ended.
        if since is not None and now >= due:
            self.idle_expired = True
            connection.event.set()
            return
        self._idle_timer = connection.loop.call_at(due, self._idle_check)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def close(self) -> None:
        """Back to the pool when the answer ended cleanly, else the connection is dropped."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        connection.direct = None
        if connection.complete and not self._head_only and not connection.lost \
                and connection.keep_alive:
            self._client._release(connection)
        else:
            connection.transport.close()


class WorkerHttp:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._idle: list[_Connection] = []

    async def request(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                      body: bytes | AsyncIterator[bytes] | None) -> Answer:
        """Send one request; the answer once its head has arrived. Raises WorkerConnectionError."""
        head = [b"%s %s HTTP/1.1\r\n" % (method.encode(), target.encode("latin-1"))]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        streamed = body is not None and not isinstance(body, bytes)
        head.append(b"transfer-encoding: chunked\r\n\r\n" if streamed
                    else b"content-length: %d\r\n\r\n" % len(body or b""))
        data = b"".join(head)
        connection, reused = await self._connection()
        try:
            if streamed:
                sending = asyncio.ensure_future(_send_chunked(connection, data, body))
                # Its failure (the client left mid-body) already cut the request; when the
                # answer wins the race nobody awaits it, so mark it retrieved here.
                sending.add_done_callback(_retrieved)
            else:
                connection.transport.write(data + (body or b""))
            try:
                status = await connection.head
            except WorkerConnectionError:
                if streamed and sending.done() and sending.exception() is not None:
                    raise sending.exception() from None  # e.g. the body was over the limit
                if not (reused and not streamed):
                    raise
                # The worker closed an idle connection just as it was reused: once more, fresh.
                connection, _ = await self._connection(fresh=True)
                connection.transport.write(data + (body or b""))
                status = await connection.head
        except BaseException:
            if connection.transport is not None:
                connection.transport.close()
            raise
        if streamed and sending.done() and sending.exception() is not None:
            raise sending.exception()
        return Answer(self, connection, status, head_only=method == "HEAD")

    async def _connection(self, fresh: bool = False) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.lost and now - connection.idle_since < IDLE_S:
                connection._begin()
                return connection, True
            connection.transport.close()
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(lambda: _Connection(loop), self.host,
                                                         self.port)
        except OSError as exc:
            raise WorkerConnectionError(f"cannot reach the worker: {exc}") from exc
        return connection, False

    def _release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def close(self) -> None:
        for connection in self._idle:
            connection.transport.close()
        self._idle.clear()


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


async def _send_chunked(connection: _Connection, head: bytes, body: AsyncIterator[bytes]) -> None:
    transport = connection.transport
    transport.write(head)
    try:
        async for chunk in body:
            if connection.lost:
                return
            transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await connection.writable.wait()
        transport.write(b"0\r\n\r\n")
    except BaseException:
        transport.close()  # the worker sees a cut request, as from a client that went away
        raise
