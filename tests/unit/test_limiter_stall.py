"""A limit far above the traffic must not refuse after a process stall (pass 11).

On a loaded machine the worker stalled for seconds; when it ran again every key looked idle (no
request had been admitted for longer than `idle_return_s`), so maintenance gave each pool back
to its row while requests were waiting for the lease of another scope of the same request. With
storage slower than a maintenance tick, the scopes took turns: the global pool was given back
while the client lease was in flight and the other way round, every acquire round found one
pool empty, and after ACQUIRE_ROUNDS the waiting requests were refused as `limited` by a limit
of a million requests a second (429, `limited_by: client`, all in one second).
"""

from __future__ import annotations

import asyncio
import random

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import Fields, RowKey, StoredRow
from tests.support.clock import FakeClock

FAR = Limit(1_000_000.0, 1_000_000.0)
SCOPED = [ScopedLimit("global", "global", FAR), ScopedLimit("client", "c", FAR)]


class SlowStore:
    """The memory store where every call takes `delay_s` of the fake clock (a loaded Azurite),
    and writes to the rows of `slow_scope` four times as long."""

    def __init__(self, clock: FakeClock, delay_s: float, slow_scope: str = "") -> None:
        self.inner, self.clock, self.delay_s = MemoryRateLimitStore(), clock, delay_s
        self.slow_scope = slow_scope

    async def read(self, key: RowKey) -> StoredRow | None:
        await self.clock.sleep(self.delay_s)
        return await self.inner.read(key)

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        slow = self.slow_scope and key.partition.startswith(self.slow_scope)
        await self.clock.sleep(self.delay_s * (4 if slow else 1))
        return await self.inner.write(key, fields, etag)

    async def put(self, key: RowKey, fields: Fields) -> str:
        await self.clock.sleep(self.delay_s)
        return await self.inner.put(key, fields)

    async def delete(self, key: RowKey, etag: str) -> None:
        await self.clock.sleep(self.delay_s)
        await self.inner.delete(key, etag)

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        await self.clock.sleep(self.delay_s)
        return await self.inner.scan(updated_before, limit)

    async def query(self, partition: str) -> list[StoredRow]:
        await self.clock.sleep(self.delay_s)
        return await self.inner.query(partition)

    async def close(self) -> None:
        pass


async def _run(clock: FakeClock, task: asyncio.Task, step_s: float = 0.01) -> None:
    """Let time pass in small steps (maintenance runs on its own, every tick) until `task` ends."""
    for _ in range(100_000):
        if task.done():
            return
        await clock.advance(step_s)
    raise AssertionError("the request never finished")


@pytest.mark.asyncio
@pytest.mark.parametrize("stall_s", [1.5, 4.5])  # pools still live / expired by then
@pytest.mark.parametrize(("delay_s", "slow_scope"),
                         [(0.05, ""), (0.4, ""), (0.05, "global"), (0.1, "client"),
                          (0.2, "client"), (0.4, "global"), (0.4, "client")])
async def test_a_stall_does_not_make_a_far_limit_refuse(stall_s, delay_s, slow_scope):
    clock = FakeClock()
    limiter = Limiter(SlowStore(clock, delay_s, slow_scope), clock, LimiterConfig(), "gw",
                      rng=random.Random(1))
    try:
        first = asyncio.create_task(limiter.acquire(SCOPED, 1))
        await _run(clock, first)
        assert first.result().allowed
        # The process stalls: its clock jumps, and the overdue maintenance tick runs first.
        await clock.advance(stall_s)
        requests = [asyncio.create_task(limiter.acquire(SCOPED, 1)) for _ in range(37)]
        for request in requests:
            await _run(clock, request)
        refused = [(d.scope, d.reason) for d in (r.result() for r in requests) if not d.allowed]
        assert refused == []
        assert limiter.counters.get("decisions_without_storage", 0) == 0
    finally:
        await limiter.close()


@pytest.mark.asyncio
async def test_maintenance_leaves_a_pool_alone_while_its_request_waits_for_another_scope():
    """The cause, step by step: the global lease lands, the client lease is still in flight,
    maintenance runs with every key idle for longer than idle_return_s."""
    clock = FakeClock()
    limiter = Limiter(SlowStore(clock, 0.1, "client"), clock, LimiterConfig(), "gw",
                      background=False, rng=random.Random(1))
    try:
        first = asyncio.create_task(limiter.acquire(SCOPED, 1))
        while not first.done():
            await clock.advance(0.01)
        clock.set(clock.now() + 5.0)  # a stall: both pools expired, both keys idle
        request = asyncio.create_task(limiter.acquire(SCOPED, 1))
        glob, client = limiter._keys[("global", "global")], limiter._keys[("client", "c")]
        while glob.fetch is not None or glob.pool(clock.now()) < 1:  # the global lease lands
            await clock.advance(0.01)
        assert not request.done() and client.fetch is not None  # the client's is in flight
        await limiter.maintain()
        assert glob.pool(clock.now()) >= 1  # not given back as idle
        assert limiter.counters.get("returns", 0) == 0
        while not request.done():
            await clock.advance(0.01)
        assert request.result().allowed
        assert limiter.counters.get("lease_rounds", 0) == 0
    finally:
        await limiter.close()
