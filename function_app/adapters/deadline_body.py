"""An upstream answer's body held to the exchange's deadline; shared by every Upstream adapter.

Headers are gone by the time the body is read, so a failure can only cut the stream: the
GatewayError raised here ends the answer where it is, with one log line
(app.ClosingStreamingResponse), never as a traceback from the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ..core.body_watch import CLIENT_CLOSED, BodyWatch, EndHook, ending
from ..core.errors import GatewayError, UpstreamTimeout

log = logging.getLogger(__name__)


class Reads:
    """An async iterator over `read()` until it gives b"" (the end of the body): an upstream
    client's read-what-has-arrived call. DeadlineBody calls `read` itself."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], Awaitable[bytes]]) -> None:
        self.read = read

    def __aiter__(self) -> Reads:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


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

    __slots__ = (
        "_chunks",
        "_closing",
        "_cut",
        "_done",
        "_errors",
        "_failure",
        "_raised",
        "_reader",
        "_reads",
        "_release",
        "_timer",
        "_translate",
        "_watch",
        "closed",
        "deadline",
        "expired",
    )

    def __init__(self, chunks: AsyncIterator[bytes] | Reads | None, deadline: float,
                 release: Callable[[], Awaitable[None]] | None,
                 translate: Callable[[Exception], GatewayError],
                 errors: tuple[type[Exception], ...] = (TimeoutError,),
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        """`loop`: the running loop, when the caller has it at hand (one call fewer)."""
        self._chunks = chunks  # None until `attach`: the timer then bounds the head (`head`)
        self._reads = chunks is not None and isinstance(chunks, Reads)
        self.deadline = deadline
        self._release = release
        self._translate = translate
        self._errors = errors
        self.expired = False
        self.closed = False
        self._reader: asyncio.Task | None = None  # the task in a read, while it is in one
        self._cut = False  # _expire cancelled the reader
        self._closing: asyncio.Future[None] | None = None
        # Who hears the first chunk and the end (`watch`, `on_end`): None until asked for (a
        # body read whole, most unary answers, never is).
        self._watch: BodyWatch | None = None
        self._failure: GatewayError | None = None  # what the body raised, for the hooks
        self._raised: BaseException | None = None  # anything else that went through a read
        self._done = False  # the chunks ended
        self._timer = (loop or asyncio.get_running_loop()).call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if self._reader is not None:  # a read in progress: cut it, as asyncio.timeout would
            self._cut = True
            self._reader.cancel()
        elif not self.closed and self._release is not None:
            log.warning("upstream deadline passed while the client was not reading; closing")
            self._failure = UpstreamTimeout()  # what the next read raises: the hooks' error
            self._closing = asyncio.ensure_future(self.aclose())

    async def head[T](self, waiting: Awaitable[T]) -> T:
        """`waiting` (the answer's head), awaited from the current task, which the one deadline
        timer (`_expire`) cancels when the deadline passes: TimeoutError then, as
        `asyncio.timeout_at(deadline)` would raise, without a second timer per exchange. Before
        `attach`; after a failure here, `abandon`.

        One timer per exchange instead of a timeout armed and disarmed around the head and
        every chunk (that cost about 5 % of the worker's CPU with many streams:
        load/bench_streams.py). As asyncio.timeout does, the cancellation is taken back
        (`uncancel`) so that only ours becomes TimeoutError; anyone else's propagates."""
        task = asyncio.current_task()
        assert task is not None  # the head is always awaited in a task
        self._reader = task
        try:
            return await waiting
        except asyncio.CancelledError:
            self._cancelled(task)
            raise
        finally:  # _read_over, inline: a call less per exchange
            self._reader = None
            if self._cut:
                self._cut = False
                task.uncancel()

    def attach(self, chunks: AsyncIterator[bytes] | Reads, release: Callable[[], Awaitable[None]]
               ) -> DeadlineBody:
        """Give the body made before its head its chunks and its release; the deadline holds."""
        self._chunks, self._release = chunks, release
        self._reads = type(chunks) is Reads or isinstance(chunks, Reads)
        return self

    def abandon(self) -> None:
        """No answer came (the head failed): stop the timer; there is nothing to release."""
        self.closed = True
        self._timer.cancel()

    def __aiter__(self) -> DeadlineBody:
        return self

    async def __anext__(self) -> bytes:
        """The next chunk. The read is awaited here, cut by the one timer (as `head` is)
        without a coroutine of its own: this runs once per streamed chunk, and the two that
        wrapped each read were a tenth of the gateway's own calls per chunk
        (load/profile_streams.py --cprofile, docs/perf/pass7-streams.md)."""
        task = asyncio.current_task()
        assert task is not None  # an async iterator is always awaited in a task
        try:
            while True:
                if self.expired:
                    raise UpstreamTimeout()
                self._reader = task
                try:
                    # A Reads' own `read` (one call less per chunk than its __anext__); an
                    # iterator's __anext__ (anext(chunks, None) wraps each in one more object).
                    chunks = self._chunks
                    chunk = await (chunks.read() if self._reads  # type: ignore[union-attr]
                                   else chunks.__anext__())  # type: ignore[union-attr]
                except StopAsyncIteration:
                    chunk = None
                except asyncio.CancelledError:
                    self._cancelled(task)
                    raise
                finally:  # _read_over, inline: a call less per chunk
                    self._reader = None
                    if self._cut:
                        self._cut = False
                        task.uncancel()
                if not chunk:
                    if chunk is None or self._reads:  # a Reads' b"" is the end
                        self._done = True
                        await self.aclose()
                        raise StopAsyncIteration
                    continue  # an empty chunk from an iterator: skipped
                watch = self._watch
                if watch is not None and watch.first is not None:
                    watch.chunk_out()  # the first chunk out, to a watcher (no layer per chunk)
                return chunk
        except StopAsyncIteration:
            raise
        except GatewayError as error:
            self._failure = error
            await self.aclose()
            raise
        except self._errors as exc:
            log.warning("upstream stream ended early: %s", type(exc).__name__)
            self._failure = error = self._translate(exc)
            await self.aclose()
            raise error from exc
        except BaseException as exc:  # a cancellation, or an error of no known type: told at
            self._raised = exc  # the close, whoever makes it
            raise

    def _cancelled(self, task: asyncio.Task) -> None:
        """A wait of `task` was cancelled: TimeoutError when it was our cut and nobody else's
        cancellation is pending; else the caller re-raises the cancellation."""
        if self._cut:
            self._cut = False
            if task.uncancel() == 0:
                raise TimeoutError from None

    @property
    def watch(self) -> BodyWatch:
        """This body's BodyWatch (core/body_watch.py), made when first asked for: a watcher
        takes it instead of wrapping the body; it hears of the first chunk from `__anext__` and
        of the end from `aclose`, after the release and the end hooks."""
        watch = self._watch
        if watch is None:
            watch = self._watch = BodyWatch()
            if self.closed:
                watch.ended(*self._ending())
        return watch

    def on_end(self, hook: EndHook) -> None:
        """`hook(error)` runs once, after the exchange's release, when the body ends, fails or
        is closed (at once if it already has): `error` is the GatewayError the body raised,
        else None. Hooks run in the order given (BodyWatch.on_end)."""
        (self._watch or self.watch).on_end(hook)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        try:
            if self._release is not None:
                await self._release()
        finally:
            if self._watch is not None:  # no call for a body nobody watches (most unary ones)
                self._watch.ended(*self._ending())

    def _ending(self) -> tuple[str | None, BaseException | None]:
        """How the body ended, as a BodyWatch is told: None (its chunks ended), the code of the
        GatewayError it raised (the deadline's included), an unknown error's type name, or
        CLIENT_CLOSED (closed before its end, or its reader cancelled)."""
        if self._failure is not None:
            return self._failure.code, self._failure
        raised = self._raised
        if raised is not None:
            error = ending(raised)
            return error, None if error == CLIENT_CLOSED else raised
        return (None, None) if self._done else (CLIENT_CLOSED, None)
