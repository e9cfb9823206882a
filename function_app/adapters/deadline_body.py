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

    def __init__(self, chunks: AsyncIterator[bytes], deadline: float,
                 release: Callable[[], Awaitable[None]],
                 translate: Callable[[Exception], GatewayError],
                 errors: tuple[type[Exception], ...] = (TimeoutError,)) -> None:
        self._chunks = chunks
        self.deadline = deadline
        self._release = release
        self._translate = translate
        self._errors = errors
        self.expired = False
        self.closed = False
        self._reading = False
        self._closing: asyncio.Future[None] | None = None
        self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if not self._reading and not self.closed:  # a read in progress times out by itself
            log.warning("upstream deadline passed while the client was not reading; closing")
            self._closing = asyncio.ensure_future(self.aclose())

    def __aiter__(self) -> DeadlineBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            while True:
                if self.expired:
                    raise UpstreamTimeout()
                self._reading = True
                try:
                    async with asyncio.timeout_at(self.deadline):
                        chunk = await anext(self._chunks, None)
                finally:
                    self._reading = False
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

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        await self._release()
