"""The limiter over a store that fails or stalls: failure modes, safe capacity, recovery."""

from __future__ import annotations

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.clock import FakeClock, settle
from tests.support.stores import FlakyRateLimitStore

SCOPED = [ScopedLimit("client", "c1", Limit(rate=100.0, burst=40.0))]


def make(**config):
    store = FlakyRateLimitStore(MemoryRateLimitStore())
    clock = FakeClock()
    config = {"expected_instances": 4, "storage_timeout_s": 0.05, **config}
    limiter = Limiter(store, clock, LimiterConfig(**config), "gw", background=False)
    return limiter, store, clock


async def burst(limiter, n):
    return [await limiter.acquire(SCOPED) for _ in range(n)]


@pytest.mark.asyncio
async def test_open_mode_admits_the_local_safe_capacity_and_counts_it():
    limiter, store, _ = make(failure_mode="open")
    store.down = True
    decisions = await burst(limiter, 30)
    assert sum(d.allowed for d in decisions) == 10  # burst 40 / 4 expected instances
    assert all(d.degraded and not d.storage_unavailable for d in decisions)
    denied = decisions[-1]
    assert (denied.scope, denied.reason) == ("client", "limited") and denied.retry_after_s > 0
    counters = limiter.counters
    assert counters["decisions_without_storage"] == 30
    assert counters["fallback_admitted"] == 10 and counters["fallback_denied"] == 20
    assert store.calls == 1  # then back-off: no storage call per request


@pytest.mark.asyncio
async def test_closed_mode_denies_with_storage_unavailable():
    limiter, store, _ = make(failure_mode="closed")
    store.down = True
    decision = await limiter.acquire(SCOPED)
    assert not decision.allowed and decision.storage_unavailable
    assert decision.reason == "storage_unavailable" and decision.retry_after_s >= 1
    assert limiter.counters["storage_unavailable_denied"] == 1


@pytest.mark.asyncio
async def test_leased_tokens_are_spent_before_falling_back():
    limiter, store, clock = make(failure_mode="closed")
    for _ in range(20):  # build up an observed rate, so the pool holds a block
        await limiter.acquire(SCOPED)
        await clock.advance(0.01)
    await settle()
    pool = int(limiter._keys[("client", "c1")].tokens)
    assert pool >= 2
    store.down = True
    decisions = await burst(limiter, pool + 1)
    assert all(d.allowed and not d.degraded for d in decisions[:pool])
    assert decisions[-1].storage_unavailable


@pytest.mark.asyncio
async def test_storage_is_retried_with_backoff_and_the_limiter_recovers_by_itself():
    limiter, store, clock = make(failure_mode="closed")
    store.down = True
    for _ in range(400):  # 4 s of requests during the outage
        await limiter.acquire(SCOPED)
        await clock.advance(0.01)
    assert 2 <= store.calls <= 15  # jittered exponential back-off, not one call per request
    assert not limiter.storage_healthy
    store.down = False
    await clock.advance(6.0)  # past the longest back-off
    decision = await limiter.acquire(SCOPED)
    assert decision.allowed and not decision.degraded
    assert limiter.storage_healthy


@pytest.mark.asyncio
async def test_slow_storage_counts_as_unavailable_after_the_timeout():
    limiter, store, _ = make(failure_mode="open", storage_timeout_s=0.02)
    store.delay_s = 0.5
    decision = await limiter.acquire(SCOPED)
    assert decision.allowed and decision.degraded
    assert limiter.counters["storage_timeouts"] == 1


@pytest.mark.asyncio
async def test_an_untranslated_store_error_is_still_just_unavailable():
    limiter, store, _ = make(failure_mode="open")
    store.down = True
    store.fail_with = lambda: RuntimeError("adapter bug")
    decision = await limiter.acquire(SCOPED)
    assert decision.allowed and decision.degraded
    assert limiter.counters["storage_errors"] == 1 and limiter.counters["internal_errors"] == 0


async def every_row(store):
    return {row.key: row for row in await store.scan(float("inf"), 10_000)}


@pytest.mark.asyncio
async def test_close_during_an_outage_tries_to_give_back_and_does_not_raise():
    limiter, store, _ = make()
    await limiter.acquire(SCOPED)
    rows, calls, passed = await every_row(store.inner), store.calls, store.passed
    store.down = True
    await limiter.close()  # raising here would fail the test
    assert store.calls > calls and store.passed == passed  # it tried; nothing got through
    assert await every_row(store.inner) == rows  # the lease stays charged: the safe side
    counters = limiter.counters
    assert counters["storage_errors"] == 1
    assert counters["returns"] == 0 and counters["internal_errors"] == 0


async def _outage(limiter, store, clock, seconds):
    """Storage down for `seconds` of fake time, with maintenance passes and a request each tick."""
    store.down = True
    for _ in range(int(seconds / 0.1)):
        await limiter.acquire(SCOPED)
        await limiter.maintain()
        await clock.advance(0.1)


@pytest.mark.asyncio
async def test_after_a_long_outage_storage_answering_again_is_noticed_within_two_seconds():
    limiter, store, clock = make(failure_mode="closed")
    await _outage(limiter, store, clock, 60.0)  # back-off at its longest
    store.down = False
    waited = 0.0
    while not limiter.storage_healthy and waited < 10:  # maintenance alone, no requests
        await limiter.maintain()
        await clock.advance(0.05)
        waited += 0.05
    assert limiter.storage_healthy and waited <= 2.0
    decision = await limiter.acquire(SCOPED)
    assert decision.allowed and not decision.degraded


@pytest.mark.asyncio
async def test_requests_alone_resume_leasing_within_two_seconds_of_storage_answering():
    limiter, store, clock = make(failure_mode="closed")
    await _outage(limiter, store, clock, 60.0)
    store.down = False
    for _ in range(41):  # 2 s of fake time, a request every 50 ms, no maintenance
        decision = await limiter.acquire(SCOPED)
        if not decision.degraded:
            break
        await clock.advance(0.05)
    assert decision.allowed and not decision.degraded
