"""A limit far above the traffic must never refuse (issue #10, section 6).

A lease started for a waiting request could run after other tokens had reached the pool; the
top-up was then too small to be worth a write and was reported as a shortage, which denied the
waiters (and everything known to be "short") although the row held a million tokens.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.clock import FakeClock

FAR = Limit(1_000_000.0, 1_000_000.0)


def test_a_pool_that_already_pays_the_request_is_not_short():
    grant = lease.take(None, FAR, held=94.0, target=109.8, cost=1.0, instance="a",
                       now=100.0, lease_s=0.25, ttl_s=2.0)
    assert grant.row is None and not grant.short and grant.wait_s == 0.0


def test_a_row_that_cannot_pay_the_waiting_request_is_short():
    row = lease.Row(0.2, 100.0, 10.0, 20.0, {})
    grant = lease.take(row, Limit(10.0, 20.0), held=0.0, target=5.0, cost=1.0, instance="a",
                       now=100.0, lease_s=0.25, ttl_s=2.0)
    assert grant.short and grant.wait_s > 0


async def _concurrent_traffic(seed: int) -> list[str]:
    """32 workers with random pauses, the clock jumping by up to 2.2 s, maintenance between."""
    rnd = random.Random(seed)
    clock = FakeClock()
    store = MemoryRateLimitStore(yield_every_op=seed % 2 == 0)
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False,
                      rng=random.Random(seed))
    scoped = [ScopedLimit("global", "global", FAR), ScopedLimit("client", "c", FAR)]
    refusals: list[str] = []

    async def worker() -> None:
        for _ in range(150):
            decision = await limiter.acquire(scoped, 1)
            if not decision.allowed:
                refusals.append(f"{decision.scope}:{decision.reason}")
            for _ in range(rnd.randrange(3)):
                await asyncio.sleep(0)

    async def time_passes() -> None:
        for _ in range(300):
            await clock.advance(rnd.choice([0, 0.0005, 0.001, 0.01, 0.1, 0.3, 1.1, 2.2]))
            if rnd.random() < 0.3:
                await limiter.maintain()

    await asyncio.gather(time_passes(), *(worker() for _ in range(32)))
    return refusals


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(190, 200))
async def test_a_limit_far_above_the_traffic_never_refuses(seed):
    assert await _concurrent_traffic(seed) == []
