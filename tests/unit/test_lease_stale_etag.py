"""A 412 on an ETag this instance wrote before a pause is staleness, not a collision: the lease
reads the row again at once instead of waiting the conflict back-off.

`load/bench_gateway.py --base REV --lease-log`: two instances sharing rows and taking turns;
every first lease after a pause was a 412, a back-off of 5-6 ms (p50), a read and a write
(docs/perf/pass8-lease.md). The back-off spreads writers that collided; an ETag a second old
or more did not collide with anyone.
"""

from __future__ import annotations

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.clock import FakeClock
from tests.unit.test_lease_resume import pause, steady

SHARED = [ScopedLimit("client", "c1", Limit(1_000_000.0, 1_000_000.0))]


async def test_a_stale_etag_after_a_pause_is_read_again_without_a_back_off():
    store, clock = MemoryRateLimitStore(), FakeClock()
    sleeps: list[float] = []

    async def back_off(seconds: float) -> None:
        sleeps.append(seconds)

    a = Limiter(store, clock, LimiterConfig(), "a", background=False, jitter_sleep=back_off)
    b = Limiter(store, clock, LimiterConfig(), "b", background=False)
    await steady(a, clock, 100, 0.005)
    await pause(a, clock, 6.0)  # a gives its pool back: its ETag in hand is its own write
    await steady(b, clock, 100, 0.005)  # b writes the same row meanwhile
    await pause(b, clock, 6.0)
    conflicts = a.counters["conflicts"]
    assert (await a.acquire(SHARED)).allowed
    assert a.counters["conflicts"] == conflicts + 1  # the write met the stale ETag
    assert sleeps == []
