"""Property: what clients are admitted over any window is bounded by the limit applied to real
usage, within the stated bound (docs/RATELIMITS.md), for any requests, reservations and
usages (issue #10, section 1).

Each request reserves a cost, is admitted or not, and is settled later with its real usage
(at most the reservation: a refund). Over every window [a, b] between two admissions, the
real usage of the requests admitted in it must not exceed

    burst + rate * (b - a) + S * H(N) + N * c + R(a)

with S = lease_slice, N instances, c the largest reservation, and R(a) the reservations in
flight at a (their refunds may be spent inside the window, as with an exact bucket).
"""

from __future__ import annotations

import heapq
import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.clock import FakeClock
from tests.support.stores import FlakyRateLimitStore

LIMIT = Limit(rate=50.0, burst=600.0)  # a token limit: burst of 12 s of rate
LEASE_S = 0.25

requests = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.2, 1.0, 3.0]),  # gap before the request
        st.integers(min_value=1, max_value=120),  # reservation
        st.sampled_from([0.0, 0.05, 0.5, 1.0, 1.0]),  # real usage as a fraction of it
        st.sampled_from([0.0, 0.01, 0.3, 2.0]),  # time until it is settled
        st.integers(min_value=0, max_value=2),  # which instance takes it
        st.booleans(),  # maintenance pass before it
    ),
    min_size=1, max_size=70,
)


async def run(events, instances: int, down: bool = False
              ) -> tuple[list[tuple[float, float, int]], list[tuple]]:
    """Drive the events; `down`: storage fails throughout (fail-open, local safe buckets)."""
    clock = FakeClock()
    store = FlakyRateLimitStore(MemoryRateLimitStore())
    store.down = down
    config = LimiterConfig(lease_s=LEASE_S, failure_mode="open", expected_instances=instances)
    limiters = [Limiter(store, clock, config, f"gw{i}", background=False,
                        rng=random.Random(i)) for i in range(instances)]
    scoped = [ScopedLimit("client_tpm", "c1", LIMIT)]
    admitted: list[tuple[float, float, int]] = []  # (time, usage, reservation)
    flights: list[tuple[float, float]] = []  # (admitted at, settled at) per admission
    pending: list[tuple[float, int, int, float]] = []  # (settle at, seq, instance, delta)
    for seq, (gap, cost, fraction, hold, which, maintain) in enumerate(events):
        await clock.advance(gap)
        now = clock.now()
        while pending and pending[0][0] <= now:
            _, _, who, delta = heapq.heappop(pending)
            limiters[who].adjust(scoped, delta)
        limiter = limiters[which % instances]
        if maintain:
            await limiter.maintain()
        if (await limiter.acquire(scoped, cost)).allowed:
            usage = float(int(cost * fraction))
            admitted.append((now, usage, cost))
            flights.append((now, now + hold))
            heapq.heappush(pending, (now + hold, seq, which % instances, usage - cost))
    return admitted, flights


def worst_violation(admitted, flights, instances: int, slack: float | None = None) -> float:
    c = max((cost for _, _, cost in admitted), default=0)
    harmonic = sum(1 / j for j in range(1, instances + 1))
    if slack is None:
        slack = lease.lease_slice(LIMIT, LEASE_S) * harmonic + instances * c
    worst = float("-inf")
    for i, (a, _, _) in enumerate(admitted):
        in_flight = sum(cost for (t, _, cost), (_, done) in zip(admitted, flights, strict=True)
                        if t < a < done)
        used = 0.0
        for b, usage, _ in admitted[i:]:
            used += usage
            allowed = LIMIT.burst + LIMIT.rate * (b - a) + slack + in_flight
            worst = max(worst, used - allowed)
    return worst


@pytest.mark.asyncio
@pytest.mark.parametrize("instances", [1, 3])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=requests)
# Refunds first (reserve 100, use nothing), then full usage: a refund credited twice shows.
@example(events=[(0.01, 100, 0.0, 0.0, 0, False)] * 30 + [(0.01, 100, 1.0, 5.0, 0, False)] * 20)
async def test_admitted_real_usage_over_any_window_is_within_the_stated_bound(instances, events):
    admitted, flights = await run(events, instances)
    assert worst_violation(admitted, flights, instances) <= 1e-6


@pytest.mark.asyncio
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=requests)
@example(events=[(0.01, 100, 0.0, 0.0, 0, False)] * 30 + [(0.01, 100, 1.0, 5.0, 0, False)] * 20)
async def test_in_fail_open_mode_real_usage_is_what_the_local_buckets_allow(events):
    # Storage down all along: each of 3 instances decides alone with burst/3 and rate/3, so
    # together they admit what one exact bucket would (no lease slack), refunds included.
    admitted, flights = await run(events, 3, down=True)
    assert worst_violation(admitted, flights, 3, slack=0.0) <= 1e-6
