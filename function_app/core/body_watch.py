"""A streamed answer's body that tells who watches it when its first chunk goes out and how it
ended, without a layer around it per chunk: the one end-hook mechanism of the gateway's bodies.

The telemetry stage needs both for every streamed answer (time to first token; the error, or
"client_closed"). It used to wrap the body in a generator of its own, which every chunk passed
through: two frames resumed per chunk (load/profile_streams.py --cprofile,
docs/perf/pass9-chunk.md). A body that reports to a `BodyWatch` carries it as `watch`: a body
made by a generator is handed on as a `WatchedBody` (`async for` then iterates the generator
itself), and an upstream answer's body (adapters/deadline_body.DeadlineBody) reports from its
own `__anext__` and `aclose`; the watcher registers its hooks instead of wrapping.

Layers that only act at the end (routing's release of the member, the attempt's span) add end
hooks (`on_end`), any number; they run before the watcher's end (docs/perf/pass11-route.md).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

from .errors import GatewayError

CLIENT_CLOSED = "client_closed"  # the body was closed (or dropped) before it ended

EndHook = Callable[[GatewayError | None], None]


class BodyWatch:
    """The hooks of one body, called by what makes the body: `first()` just before the first
    chunk goes out, and once, after the body's own clean-up, every end hook (`on_end`, with the
    GatewayError the body raised, else None) then `end(error, exc)`, with `error` None (it
    ended), the GatewayError code or exception type name (it raised `exc`), or CLIENT_CLOSED
    (`exc` None). `first` and `end` are one watcher's (`take`)."""

    __slots__ = ("_hooks", "_over", "end", "first")

    def __init__(self) -> None:
        self.first: Callable[[], None] | None = None
        self.end: Callable[[str | None, BaseException | None], None] | None = None
        self._hooks: list[EndHook] | None = None
        self._over: tuple[str | None, BaseException | None] | None = None  # once it ended

    def take(self, first: Callable[[], None],
             end: Callable[[str | None, BaseException | None], None]) -> bool:
        """Become the watcher; False when there already is one, or the body has already ended
        (then wrap the body instead: the layer sees how it ends)."""
        if self.end is not None or self.first is not None or self._over is not None:
            return False
        self.first, self.end = first, end
        return True

    def on_end(self, hook: EndHook) -> None:
        """`hook(failure)` runs once, when the body has ended (at once if it has): `failure` is
        the GatewayError the body raised, else None. End hooks run in the order given, before
        the watcher's `end`: for the layers that only act at the end, a generator around the
        body cost each of them two calls per streamed chunk."""
        if self._over is not None:
            hook(_failure(self._over[1]))
        elif self._hooks is None:
            self._hooks = [hook]
        else:
            self._hooks.append(hook)

    def chunk_out(self) -> None:
        """Before a chunk goes out: tells `first` the first time only (a generator's loop
        keeps a flag of its own, so that later chunks make no call)."""
        first, self.first = self.first, None
        if first is not None:
            first()

    def ended(self, error: str | None, exc: BaseException | None) -> None:
        """The body ended (once; a second call is ignored): every end hook, even after one
        failed, then the watcher; the first hook's failure is raised after them all."""
        if self._over is not None:
            return
        self._over = (error, exc)
        hooks, self._hooks = self._hooks, None
        failed: Exception | None = None
        if hooks is not None:
            failure = _failure(exc)
            for hook in hooks:
                try:
                    hook(failure)
                except Exception as hook_failed:  # the others must still run: raised below
                    failed = failed or hook_failed
        end = self.end
        if end is not None:
            end(error, exc)
        if failed is not None:
            raise failed


def _failure(exc: BaseException | None) -> GatewayError | None:
    return exc if isinstance(exc, GatewayError) else None


class WatchedBody:
    """`chunks` (a generator reporting to `watch`), iterated as itself: no call of its own per
    chunk under `async for`. `aclose` closes the generator, which runs its clean-up."""

    __slots__ = ("_chunks", "watch")

    def __init__(self, chunks: AsyncGenerator[bytes], watch: BodyWatch) -> None:
        self._chunks = chunks
        self.watch = watch

    def __aiter__(self) -> AsyncGenerator[bytes]:
        return self._chunks

    def __anext__(self):
        """For a caller that steps it by hand (`anext`); `async for` never calls this."""
        return self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()


def ending(exc: BaseException) -> str:
    """How a body that raised `exc` ended, for a watch: a GatewayError's code, another error's
    type name; a close or a cancellation is the client's going (CLIENT_CLOSED)."""
    if isinstance(exc, GatewayError):
        return exc.code
    return type(exc).__name__ if isinstance(exc, Exception) else CLIENT_CLOSED


async def watched(body: AsyncIterator[bytes], watch: BodyWatch) -> AsyncIterator[bytes]:
    """`body` through a layer that tells `watch`, for a body that carries no free watch of its
    own (one frame per chunk): the first chunk, then the end after `body` is closed."""
    unseen, error, failed = True, CLIENT_CLOSED, None  # unless it ends or raises first
    try:
        async for chunk in body:
            if unseen:
                unseen = False
                watch.chunk_out()
            yield chunk
        error = None
    except BaseException as exc:
        error, failed = ending(exc), exc
        raise
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()  # settles the token bill before the watcher reads it
        watch.ended(error, None if error == CLIENT_CLOSED else failed)
