"""Idle rows are deleted by one instance at a time, and only when deleting loses nothing."""

from __future__ import annotations

import random

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keys import SWEEP_PARTITION
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import RowKey
from tests.support.clock import FakeClock


async def bucket_rows(store):
    """Every bucket row's key (rows all carry a numeric ts, so a scan with no cutoff finds all)."""
    rows = await store.scan(float("inf"), 10_000)
    return {row.key for row in rows if row.key.partition != SWEEP_PARTITION}


@pytest.mark.asyncio
async def test_one_instance_sweeps_idle_full_rows_and_keeps_the_rest():
    store, clock = MemoryRateLimitStore(), FakeClock()
    config = LimiterConfig(sweep_interval_s=10, sweep_idle_s=60)
    limiters = [
        Limiter(store, clock, config, f"gw{i}", rng=random.Random(i), background=False)
        for i in range(2)
    ]
    for key in ("a", "b"):
        await limiters[0].acquire([ScopedLimit("client", key, Limit(10, 20))])
    never_refills = RowKey("client:drained", "s0")
    await store.write(
        never_refills, lease.row_to_fields(lease.Row(0, clock.now(), 0.0, 5, {})), None
    )
    await limiters[0].close()
    await clock.advance(61)
    for limiter in limiters:
        await limiter.maintain()
    assert (await bucket_rows(store)) == {never_refills}
    assert sum(limiter.counters["sweeps"] for limiter in limiters) == 1
    assert sum(limiter.counters["swept_rows"] for limiter in limiters) == 2


@pytest.mark.asyncio
async def test_a_row_in_use_survives_the_sweep():
    store, clock = MemoryRateLimitStore(), FakeClock()
    config = LimiterConfig(sweep_interval_s=10, sweep_idle_s=60)
    limiter = Limiter(store, clock, config, "gw", background=False)
    scoped = [ScopedLimit("client", "busy", Limit(10, 20))]
    for _ in range(70):
        await limiter.acquire(scoped)
        await clock.advance(1.0)
        await limiter.maintain()
    assert len(await bucket_rows(store)) == 1
    assert limiter.counters["sweeps"] >= 1 and limiter.counters["swept_rows"] == 0
