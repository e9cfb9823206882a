"""The in-flight bound every real Upstream adapter holds: at most N exchanges at once."""

from __future__ import annotations

import asyncio

from ..core.errors import Overloaded

RETRY_AFTER_S = "1"


class Slots:
    """At most `size` exchanges at once (None: unbounded). A request that finds every slot taken
    waits up to its connect timeout, then gets 503 `overloaded` with Retry-After: the pool is
    full, no backend is slow (a 504 would say so)."""

    __slots__ = ("_slots",)

    def __init__(self, size: int | None):
        self._slots = asyncio.Semaphore(size) if size else None

    async def take(self, wait_s: float) -> None:
        slots = self._slots
        if slots is None:
            return
        if not slots.locked():
            await slots.acquire()  # returns at once: no timer to arm on the hot path
            return
        try:
            async with asyncio.timeout(wait_s):
                await slots.acquire()
        except TimeoutError:
            raise Overloaded(headers={"Retry-After": RETRY_AFTER_S}) from None

    def free(self) -> None:
        if self._slots is not None:
            self._slots.release()
