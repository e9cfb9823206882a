"""The tier stack: the memory LRU in front of an optional shared tier.

A shared tier can never fail or slow a request: each call is bounded by `timeout_s`, any error
or timeout is counted and answered as a miss (or a skipped write), and after a failure the
shared tier is left alone for `cooldown_s`, so an outage costs one timeout per cooldown, not one
per request. Writes to the shared tier happen in the background: a miss is answered as soon as
the upstream answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .entry import CacheEntry
from .memory import MemoryTier
from .tier import CacheTier

log = logging.getLogger(__name__)
SHARED_COUNTERS = ("hits", "misses", "errors", "timeouts", "skipped", "writes", "write_errors")


class TieredCache:
    def __init__(self, memory: MemoryTier, shared: CacheTier | None, *, timeout_s: float,
                 monotonic: Callable[[], float], cooldown_s: float = 1.0):
        self.memory = memory
        self.shared = shared
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._monotonic = monotonic
        self._down_until = 0.0
        self._writes: set[asyncio.Task] = set()
        self.shared_counters = dict.fromkeys(SHARED_COUNTERS, 0)

    @property
    def backend(self) -> str:
        return self.shared.name if self.shared is not None else "memory"

    async def get(self, key: str) -> CacheEntry | None:
        entry = self.memory.lookup(key)
        if entry is not None or self.shared is None:
            return entry
        entry = await self._guarded("get", self.shared.get(key))
        if entry is None:
            return None
        if entry.remaining(self.memory.now()) <= 0:
            self.shared_counters["misses"] += 1
            return None
        self.shared_counters["hits"] += 1
        self.memory.store(key, entry)
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        """Store in memory now and in the shared tier in the background."""
        self.memory.store(key, entry)
        if self.shared is None or not self._shared_up():
            return
        task = asyncio.get_running_loop().create_task(self._write(key, entry))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, key: str, entry: CacheEntry) -> None:
        assert self.shared is not None
        try:
            await asyncio.wait_for(self.shared.put(key, entry), self.timeout_s)
            self.shared_counters["writes"] += 1
        except Exception as exc:  # any failure of the shared tier is survivable
            self.shared_counters["write_errors"] += 1
            self._mark_down(exc)

    async def _guarded(self, what: str, call) -> CacheEntry | None:
        if not self._shared_up():
            call.close()
            self.shared_counters["skipped"] += 1
            return None
        try:
            entry = await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError as exc:
            self.shared_counters["timeouts"] += 1
            self._mark_down(exc)
            return None
        except Exception as exc:  # any failure of the shared tier is survivable
            self.shared_counters["errors"] += 1
            self._mark_down(exc)
            return None
        if entry is None:
            self.shared_counters["misses"] += 1
        return entry

    def _shared_up(self) -> bool:
        return self._monotonic() >= self._down_until

    def _mark_down(self, exc: BaseException) -> None:
        if self._shared_up():
            log.warning("shared cache tier %s failed (%s); bypassed for %.1f s",
                        self.backend, type(exc).__name__, self.cooldown_s)
        self._down_until = self._monotonic() + self.cooldown_s

    async def flush(self) -> None:
        """Wait for background writes (tests and shutdown)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        tiers: dict[str, Any] = {"memory": self.memory.stats()}
        if self.shared is not None:
            tiers[self.shared.name] = {**self.shared.stats(), **self.shared_counters}
        return tiers

    async def aclose(self) -> None:
        await self.flush()
        if self.shared is not None:
            await self.shared.aclose()
        await self.memory.aclose()
