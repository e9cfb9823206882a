"""Every storage call the limiter makes goes through here: timeout, counting, back-off.

`GuardedStore` wraps a RateLimitStore so that a call either returns, raises StoreConflict, or
raises StoreUnavailable, within `timeout_s`. While storage is failing, `StorageHealth` says when
the next attempt may be made (jittered exponential back-off), so a storage outage costs one
timed-out call per back-off period, not one per request. Any success clears the back-off.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import TypeVar

from function_app.core.clock import Clock
from function_app.core.ratelimit.store import (
    Fields,
    RateLimitStore,
    RowKey,
    StoreConflict,
    StoredRow,
    StoreUnavailable,
)

from .counters import Counters

T = TypeVar("T")


class StorageHealth:
    """Consecutive failures and the wall-clock time before which storage is not tried again."""

    def __init__(self, clock: Clock, rng: random.Random, min_s: float, max_s: float) -> None:
        self._clock, self._rng = clock, rng
        self._min_s, self._max_s = min_s, max_s
        self.failures = 0
        self.down_until = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.down_until

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    def failed(self) -> None:
        self.failures += 1
        delay = min(self._max_s, self._min_s * 2 ** (self.failures - 1))
        self.down_until = self._clock.now() + delay * self._rng.uniform(0.5, 1.0)

    def succeeded(self) -> None:
        self.failures = 0
        self.down_until = 0.0


class GuardedStore:
    """A RateLimitStore with a deadline per call, counters and health tracking."""

    def __init__(
        self, store: RateLimitStore, health: StorageHealth, counters: Counters, timeout_s: float
    ) -> None:
        self._store, self.health, self._counters = store, health, counters
        self._timeout_s = timeout_s

    async def read(self, key: RowKey) -> StoredRow | None:
        self._counters.incr("storage_reads")
        return await self._call(self._store.read(key))

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        self._counters.incr("storage_writes")
        return await self._call(self._store.write(key, fields, etag))

    async def delete(self, key: RowKey, etag: str) -> None:
        self._counters.incr("storage_deletes")
        await self._call(self._store.delete(key, etag))

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        self._counters.incr("storage_reads")
        return await self._call(self._store.scan(updated_before, limit))

    async def _call(self, operation: Awaitable[T]) -> T:
        self._counters.incr("storage_round_trips")
        try:
            result = await asyncio.wait_for(operation, self._timeout_s)
        except StoreConflict:
            self._counters.incr("conflicts")
            self.health.succeeded()  # a 412 is storage answering
            raise
        except TimeoutError:
            self._counters.incr("storage_timeouts")
            self._fail()
            raise StoreUnavailable("storage timed out") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any other failure means "storage unavailable"
            self._fail()
            raise StoreUnavailable(str(exc) or type(exc).__name__) from None
        self.health.succeeded()
        return result

    def _fail(self) -> None:
        self._counters.incr("storage_errors")
        self.health.failed()
