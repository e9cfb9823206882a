"""The per-instance tier: an LRU bounded in bytes, never above its budget.

An entry larger than the whole budget is not stored. Inserting evicts from the least recently
used end until the new entry fits, so `bytes <= budget` holds after every call; expired entries
are dropped when met. O(1) per operation (an OrderedDict keeps the recency order).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .entry import CacheEntry


class MemoryTier:
    name = "memory"

    def __init__(self, budget_bytes: int, now: Callable[[], float]):
        self.budget = budget_bytes
        self._now = now
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self.bytes = 0
        self.evictions = 0
        self.expired = 0

    def now(self) -> float:
        return self._now()

    def lookup(self, key: str) -> CacheEntry | None:
        """The synchronous `get`: the hot path of a hit takes no await."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.remaining(self._now()) <= 0:
            self._drop(key)
            self.expired += 1
            return None
        self._entries.move_to_end(key)
        return entry

    async def get(self, key: str) -> CacheEntry | None:
        return self.lookup(key)

    def store(self, key: str, entry: CacheEntry) -> bool:
        """Insert, evicting least recently used entries; False when it can never fit."""
        size = entry.size
        if size > self.budget:
            return False
        if key in self._entries:
            self._drop(key)
        while self.bytes + size > self.budget:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1
        self._entries[key] = entry
        self.bytes += size
        return True

    async def put(self, key: str, entry: CacheEntry) -> None:
        self.store(key, entry)

    async def delete(self, key: str) -> None:
        if key in self._entries:
            self._drop(key)

    def _drop(self, key: str) -> None:
        self.bytes -= self._entries.pop(key).size

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "bytes": self.bytes, "budget_bytes": self.budget,
                "evictions": self.evictions, "expired": self.expired}

    async def aclose(self) -> None:
        self._entries.clear()
        self.bytes = 0
