"""A fake clock for tests: time moves only when a test says so, and sleepers wake in order."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """A clock (function_app.core.clock.Clock) that moves only when `advance` is called.

    `sleep` suspends until the fake time reaches the sleeper's deadline; `advance` wakes every
    sleeper whose deadline has passed, earliest first, and yields so woken tasks run.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    def set(self, now: float) -> None:
        """Jump to `now` without waking sleepers (for pure code that only reads the time)."""
        self._now = now

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking due sleepers, and let them run."""
        self._now += max(0.0, seconds)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let ready tasks run a few loop iterations (each awaited hop, e.g. wait_for, takes one)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class SkewedClock:
    """Another machine's clock: `skew` seconds ahead (behind when negative) of `inner`."""

    def __init__(self, inner: FakeClock, skew: float) -> None:
        self.inner, self.skew = inner, skew

    def now(self) -> float:
        return self.inner.now() + self.skew

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
