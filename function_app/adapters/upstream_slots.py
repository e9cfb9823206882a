"""The in-flight bound every real Upstream adapter holds: at most N exchanges at once."""

from __future__ import annotations

import asyncio
from collections import deque

from ..core.errors import Overloaded

RETRY_AFTER_S = "1"


class Slots:
    """At most `size` exchanges at once (None: unbounded). A request that finds every slot taken
    waits up to its connect timeout, then gets 503 `overloaded` with Retry-After: the pool is
    full, no backend is slow (a 504 would say so). Slots go to waiters first come, first served.

    A count and a queue of waiters rather than an asyncio.Semaphore: its `locked()`, called
    twice for each slot taken at once, scans the waiters with a generator, and `release` wakes
    through a method of its own, eleven calls an exchange against one here
    (docs/perf/pass11-route.md). A freed slot passes straight to the first waiter still
    waiting; one handed a slot that it can no longer use (its wait timed out or was cancelled
    meanwhile) passes it on."""

    __slots__ = ("_left", "_waiters")

    def __init__(self, size: int | None):
        self._left = size  # free slots; None: unbounded
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        """A slot at once, when one is free and nobody is waiting for one; else False (then
        `take`)."""
        left = self._left
        if left is None:
            return True
        if left > 0 and not self._waiters:
            self._left = left - 1
            return True
        return False

    async def take(self, wait_s: float) -> None:
        """A slot, waiting up to `wait_s` for one; Overloaded after that."""
        if self.take_now():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(wait_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.free()  # handed a slot just as the wait ended: the next one gets it
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            if isinstance(exc, TimeoutError):
                raise Overloaded(headers={"Retry-After": RETRY_AFTER_S}) from None
            raise

    def free(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the count."""
        if self._left is None:
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._left += 1
