"""Several limiter instances sharing one store, driven above the limit with a fake clock.

Checks the bound stated in docs/RATELIMITS.md (lease mode) on every interval of the run:
admitted cost <= burst + rate * T + lease_overshoot_bound(...), and that the limit is not
undershot by more than 5 % over the whole run.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.bounds import lease_overshoot_bound
from tests.support.clock import FakeClock

STEP_S = 0.002


async def yield_for(seconds: float) -> None:
    """The back-off after a 412 as loop turns, not wall time: one turn per 0.5 ms asked.

    A real sleep made the interleaving of the colliding writers (and so the count admitted)
    depend on how busy the machine was; this keeps them de-synchronised the same way on every
    run."""
    for _ in range(1 + int(seconds * 2000)):
        await asyncio.sleep(0)


def worst_excess(times: list[float], rate: float, burst: float) -> float:
    """max over intervals [t_i, t_j] of admitted - (burst + rate * (t_j - t_i)); O(n)."""
    best, suffix = float("-inf"), float("-inf")
    for j in range(len(times) - 1, -1, -1):
        suffix = max(suffix, j - rate * times[j])  # best end at or after j
        best = max(best, suffix - (j - 1) + rate * times[j] - burst)
    return best


def heavy(i: int, step: int) -> float:
    """Requests per step for instance i: uneven, above the limit; instance 0 idles a while."""
    if i == 0 and 1500 <= step < 2500:
        return 0.0
    return (i + 1) * 0.5 if step % 1000 < 700 else (4 - i) * 0.5


def spiky(i: int, step: int) -> float:
    """Below the limit long enough for the row to fill and the pools to grow, then a spike:
    the worst case for overshoot, since the full row and every pool are spent at once."""
    phase = step % 1000
    if phase < 900:
        return 0.08  # 4 instances x 0.08 per 2 ms = 160/s, under 200/s
    return 5.0 if phase < 950 else heavy(i, step)


async def drive(limiters, scoped, steps, clock, rng, demand):
    """Offer the demand of every instance each step, concurrently; return admit times."""
    admitted: list[float] = []

    async def one(i, limiter, step):
        count = int(demand(i, step)) + (rng.random() < demand(i, step) % 1)
        for _ in range(count):
            if (await limiter.acquire(scoped)).allowed:
                admitted.append(clock.now())

    for step in range(steps):
        await asyncio.gather(*(one(i, lim, step) for i, lim in enumerate(limiters)))
        await clock.advance(STEP_S)
        if step % 25 == 0:
            await asyncio.gather(*(lim.maintain() for lim in limiters))
    return admitted


async def run(instances: int, limit: Limit, shards: int, steps: int, demand=heavy):
    store = MemoryRateLimitStore(yield_every_op=True)  # writers interleave and collide
    clock = FakeClock()
    config = LimiterConfig(lease_s=0.25)
    limiters = [
        Limiter(store, clock, config, f"gw{i}", rng=random.Random(i), background=False,
                jitter_sleep=yield_for)
        for i in range(instances)
    ]
    scoped = [ScopedLimit("global", "global", limit, shards)]
    start = clock.now()
    admitted = await drive(limiters, scoped, steps, clock, random.Random(7), demand)
    elapsed = clock.now() - start
    counters = [lim.counters for lim in limiters]
    for lim in limiters:
        await lim.close()
    return admitted, elapsed, counters


@pytest.mark.asyncio
@pytest.mark.parametrize("shards", [1, 2])
async def test_a_spike_after_a_quiet_spell_overshoots_but_never_past_the_stated_bound(shards):
    instances, limit = 4, Limit(rate=200.0, burst=100.0)
    admitted, _, counters = await run(instances, limit, shards, steps=3000, demand=spiky)
    bound = lease_overshoot_bound(limit, 0.25, instances, max_cost=1)
    excess = worst_excess(admitted, limit.rate, limit.burst)
    assert excess <= bound + 1e-6, f"excess {excess:.1f}, bound {bound:.1f}"
    if shards == 1:
        assert excess > 0  # pools held at the spike's start really are spent on top
    assert all(c["internal_errors"] == 0 for c in counters)


@pytest.mark.asyncio
@pytest.mark.parametrize("shards", [1, 2])
async def test_n_instances_above_the_limit_admit_within_the_bound_and_at_least_95_percent(
    shards,
):
    instances, limit = 4, Limit(rate=200.0, burst=100.0)
    admitted, elapsed, counters = await run(instances, limit, shards, steps=4000)
    bound = lease_overshoot_bound(limit, 0.25, instances, max_cost=1)
    assert worst_excess(admitted, limit.rate, limit.burst) <= bound + 1e-6
    ceiling = limit.burst + limit.rate * elapsed
    assert 0.95 * ceiling <= len(admitted) <= ceiling
    assert sum(c["conflicts"] for c in counters) > 0  # the instances really did collide
    assert all(c["internal_errors"] == 0 for c in counters)


def test_worst_excess_finds_the_densest_interval():
    # 3 admissions at t=1 (burst 2, rate 1): one too many; later ones are within the rate.
    assert worst_excess([1.0, 1.0, 1.0, 5.0], rate=1.0, burst=2.0) == pytest.approx(1.0)
    assert worst_excess([0.0, 1.0, 2.0], rate=1.0, burst=1.0) <= 0
