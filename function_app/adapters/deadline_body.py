"""An upstream answer's body held to the exchange's deadline; shared by every Upstream adapter.

Headers are gone by the time the body is read, so a failure can only cut the stream: the
GatewayError raised here ends the answer where it is, with one log line
(app.ClosingStreamingResponse), never as a traceback from the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ..core.errors import GatewayError, UpstreamTimeout

log = logging.getLogger(__name__)


class DeadlineBody:
    """Chunks from `chunks` (empty ones skipped) until they end or the loop time `deadline`.

    Each wait for a chunk is bounded by the deadline; a timer covers the time spent suspended
    between chunks, while the client is not reading, and closes the exchange then, so a client
    that stops reading cannot hold a connection past the route's timeout. A read after that
    raises UpstreamTimeout. `release` runs exactly once, when the body ends, fails or is closed.
    A failure of a type in `errors` is raised as `translate(exc)`; GatewayErrors pass as they are.

    An iterator object rather than a generator, so that `aclose` releases the exchange even when
    nobody ever started reading (closing an unstarted generator skips its `finally`).
    """

    def __init__(self, chunks: AsyncIterator[bytes] | None, deadline: float,
                 release: Callable[[], Awaitable[None]] | None,
                 translate: Callable[[Exception], GatewayError],
                 errors: tuple[type[Exception], ...] = (TimeoutError,)) -> None:
        self._chunks = chunks  # None until `attach`: the timer then bounds the head (`head`)
        self.deadline = deadline
        self._release = release
        self._translate = translate
        self._errors = errors
        self.expired = False
        self.closed = False
        self._reader: asyncio.Task | None = None  # the task in a read, while it is in one
        self._cut = False  # _expire cancelled the reader
        self._closing: asyncio.Future[None] | None = None
        self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if self._reader is not None:  # a read in progress: cut it, as asyncio.timeout would
            self._cut = True
            self._reader.cancel()
        elif not self.closed and self._release is not None:
            log.warning("upstream deadline passed while the client was not reading; closing")
            self._closing = asyncio.ensure_future(self.aclose())

    async def head[T](self, waiting: Awaitable[T]) -> T:
        """`waiting` (the answer's head), cut by this body's one timer: TimeoutError when the
        deadline passes first, as `asyncio.timeout_at(deadline)` would raise, without a second
        timer per exchange. Before `attach`; after a failure here, `abandon`."""
        return await self._cut_at_deadline(waiting)

    def attach(self, chunks: AsyncIterator[bytes], release: Callable[[], Awaitable[None]]
               ) -> DeadlineBody:
        """Give the body made before its head its chunks and its release; the deadline holds."""
        self._chunks, self._release = chunks, release
        return self

    def abandon(self) -> None:
        """No answer came (the head failed): stop the timer; there is nothing to release."""
        self.closed = True
        self._timer.cancel()

    def __aiter__(self) -> DeadlineBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            while True:
                if self.expired:
                    raise UpstreamTimeout()
                chunk = await self._read()
                if chunk is None:
                    await self.aclose()
                    raise StopAsyncIteration
                if chunk:
                    return chunk
        except GatewayError:
            await self.aclose()
            raise
        except self._errors as exc:
            log.warning("upstream stream ended early: %s", type(exc).__name__)
            await self.aclose()
            raise self._translate(exc) from exc

    async def _read(self) -> bytes | None:
        """The next chunk, or None at the end; TimeoutError when the deadline cuts the read."""
        try:
            # __anext__ itself: anext(chunks, None) wraps every read in one more object.
            return await self._cut_at_deadline(self._chunks.__anext__())  # type: ignore[union-attr]
        except StopAsyncIteration:
            return None

    async def _cut_at_deadline[T](self, waiting: Awaitable[T]) -> T:
        """`waiting`, awaited from the current task, which the one deadline timer (`_expire`)
        cancels when the deadline passes: TimeoutError then.

        One timer per exchange instead of a timeout armed and disarmed around the head and
        every chunk (that cost about 5 % of the worker's CPU with many streams:
        load/bench_streams.py). As asyncio.timeout does, the cancellation is taken back
        (`uncancel`) so that only ours becomes TimeoutError; anyone else's propagates."""
        task = asyncio.current_task()
        assert task is not None  # the head and an async iterator are always awaited in a task
        self._reader = task
        try:
            return await waiting
        except asyncio.CancelledError:
            if self._cut:
                self._cut = False
                if task.uncancel() == 0:
                    raise TimeoutError from None
            raise
        finally:
            self._reader = None
            if self._cut:  # cut, but the wait returned anyway: take the cancellation back
                self._cut = False
                task.uncancel()

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        if self._release is not None:
            await self._release()
