"""Request coalescing: concurrent identical misses on one instance make one upstream call.

The first caller for a key (the leader) runs the fetch; callers arriving while it runs wait for
its result instead. The result is whatever the leader's fetch returns (an entry, or None when
the answer could not be shared): a follower that gets None fetches for itself, and so does
every follower of a leader that failed (its error is its own; theirs may succeed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Coalescer[T]:
    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T | None]] = {}
        self.coalesced = 0

    def leading(self, key: str) -> bool:
        return key in self._inflight

    async def wait(self, key: str) -> T | None:
        """The result of the fetch in flight for `key` (call only when `leading(key)`)."""
        self.coalesced += 1
        return await asyncio.shield(self._inflight[key])

    async def lead(self, key: str, fetch: Callable[[], Awaitable[tuple[T | None, object]]]
                   ) -> object:
        """Run `fetch` as the leader; it returns (shared result, the leader's own answer).

        When another caller already leads `key` (a follower that got None and fetches for
        itself), `fetch` simply runs: only one leader is registered at a time."""
        if key in self._inflight:
            return (await fetch())[1]
        future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            shared, own = await fetch()
            future.set_result(shared)
            return own
        finally:
            if not future.done():
                future.set_result(None)
            if self._inflight.get(key) is future:
                del self._inflight[key]
