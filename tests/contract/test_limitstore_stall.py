"""A process stall behind slow storage must not make a far-from-binding limit refuse, on the
memory store and on Azurite alike (the deterministic version: tests/unit/test_limiter_stall.py).

Real time and the real maintenance loop; the stall is the limiter's clock jumping ahead, and
writes are slower than a maintenance tick, the client's slowest (a loaded Azurite). Before the
fix maintenance gave back one scope's pool while the request waited for the other's lease, and
37 requests were refused as `limited` by a limit of a million requests a second.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import Fields, RowKey, StoredRow

FAR = Limit(1_000_000.0, 1_000_000.0)
SCOPED = [ScopedLimit("global", "global", FAR), ScopedLimit("client", "c", FAR)]


class JumpingClock:
    """Wall-clock time plus the stalls so far."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SlowWrites:
    """Forwards to `inner`; a write first waits `delay_s` of real time (longer than a
    maintenance tick), one to the client's row three times that."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    async def read(self, key: RowKey) -> StoredRow | None:
        return await self.inner.read(key)

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        await asyncio.sleep(self.delay_s * (3 if key.partition.startswith("client") else 1))
        return await self.inner.write(key, fields, etag)

    async def put(self, key: RowKey, fields: Fields) -> str:
        return await self.inner.put(key, fields)

    async def delete(self, key: RowKey, etag: str) -> None:
        await self.inner.delete(key, etag)

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        return await self.inner.scan(updated_before, limit)

    async def query(self, partition: str) -> list[StoredRow]:
        return await self.inner.query(partition)

    async def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_a_stall_behind_slow_storage_does_not_refuse_a_far_limit(bucket_store):
    clock = JumpingClock()
    # A generous timeout: this is about slow answers, not missing ones (those fail open).
    config = LimiterConfig(storage_timeout_s=10.0)
    limiter = Limiter(SlowWrites(bucket_store, 0.2), clock, config, "gw",
                      rng=random.Random(3))
    try:
        assert (await limiter.acquire(SCOPED, 1)).allowed
        clock.offset += 4.5  # the process stalled: pools expired, every key idle
        decisions = await asyncio.gather(*(limiter.acquire(SCOPED, 1) for _ in range(37)))
        assert [(d.scope, d.reason) for d in decisions if not d.allowed] == []
        assert limiter.counters.get("decisions_without_storage", 0) == 0
    finally:
        await limiter.close()
