"""Limiter.adjust: settling a reservation with the real cost (refund or extra charge)."""

from __future__ import annotations

import math

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.tokens import TokenLimits
from tests.support.clock import FakeClock

TPM = [ScopedLimit("client_tpm", "c1", Limit(10.0, 100.0))]


def make(**config):
    store = MemoryRateLimitStore()
    return Limiter(store, FakeClock(), LimiterConfig(**config), "gw", background=False)


async def test_a_refund_is_spendable_again_without_storage():
    limiter = make()
    assert (await limiter.acquire(TPM, 80)).allowed
    assert not (await limiter.acquire(TPM, 50)).allowed  # 20 left in the row
    limiter.adjust(TPM, -70)  # the request used 10 of its 80
    writes = limiter.counters["storage_writes"]
    assert (await limiter.acquire(TPM, 50)).allowed
    assert limiter.counters["storage_writes"] == writes
    assert limiter.counters["refunded_tokens"] == 70


async def test_an_extra_charge_is_a_debt_the_next_lease_pays_first():
    limiter = make()
    assert (await limiter.acquire(TPM, 50)).allowed
    limiter.adjust(TPM, 30)  # the request used 80: 20 are left in all
    assert not (await limiter.acquire(TPM, 30)).allowed
    assert (await limiter.acquire(TPM, 20)).allowed
    assert limiter.counters["extra_charged_tokens"] == 30


async def test_total_admitted_never_exceeds_the_burst_after_settling():
    limiter = make()
    actuals = (5, 40, 0, 25, 90, 3, 60, 10, 10, 10)
    charged, admitted = 0, 0
    for actual in actuals:
        if (await limiter.acquire(TPM, 30)).allowed:
            limiter.adjust(TPM, actual - 30)
            charged, admitted = charged + actual, admitted + 1
    # The burst, plus one request's overrun of its reservation; then only denials.
    assert charged <= 100 + max(a - 30 for a in actuals)
    assert admitted == 5 and charged == 160


async def test_adjust_never_raises_and_ignores_what_it_does_not_know():
    limiter = make()
    limiter.adjust(TPM, -5)  # a key never acquired: nothing to settle
    limiter.adjust(TPM, math.nan)
    limiter.adjust([object()], 5)  # a bug in the caller is logged and counted, not raised
    assert limiter.counters["internal_errors"] == 1


def test_token_limits_are_per_minute_and_zero_turns_them_off():
    limits = TokenLimits.per_minute(6000, 0)
    assert limits.client == Limit(100.0, 6000.0) and limits.model is None
    assert [s.scope for s in limits.scopes("c", "m")] == ["client_tpm"]
    assert [s.key for s in TokenLimits.per_minute(60, 120).scopes("c", "m")] == ["c", "m"]


async def test_in_fail_open_mode_refunds_come_back_to_the_local_safe_bucket():
    from tests.support.stores import FlakyRateLimitStore

    store = FlakyRateLimitStore(MemoryRateLimitStore())
    store.down = True
    clock = FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(failure_mode="open", expected_instances=1),
                      "gw", background=False)
    # Local safe bucket: 100 tokens. Each request reserves 40 and really uses 2.
    admitted = 0
    for _ in range(200):
        decision = await limiter.acquire(TPM, 40)
        assert decision.degraded
        if decision.allowed:
            admitted += 1
            limiter.adjust(TPM, -38)
    # Charged on real usage, 200 requests cost 400 tokens: more than the burst of 100, so the
    # last ones are refused, but only after the real usage (not the reservations) ran it down.
    assert admitted >= (100 - 40) // 2 + 1 > 100 // 40
    assert admitted * 2 <= 100 + 2 + 40
