"""`LimiterEngine.admit_now`: acquire's fast path without a coroutine, which the rate-limit stage
tries first. It decides and counts exactly as `acquire` would, leaves everything else (the
first request, a pool that cannot pay, no scopes) to `acquire`, and never raises."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.http.context import RequestContext
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.headers import rate_limit_headers
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import REQUESTS_DECISION, Limit, ScopedLimit
from function_app.ratelimit.stage import rate_limit_stage
from tests.support.clock import FakeClock

SCOPED = [ScopedLimit("global", "global", Limit(1000.0, 2000.0)),
          ScopedLimit("client", "c1", Limit(10.0, 20.0))]


def make(**config) -> tuple[Limiter, FakeClock]:
    clock = FakeClock()
    limiter = Limiter(MemoryRateLimitStore(), clock, LimiterConfig(**config), "gw",
                      background=False)
    return limiter, clock


@pytest.mark.asyncio
async def test_admit_now_leaves_the_first_request_and_a_dry_pool_to_acquire():
    limiter, _ = make()
    assert limiter.admit_now(SCOPED, 1.0) is None  # not started: acquire starts the upkeep
    assert limiter.counters["decisions"] == 0
    first = await limiter.acquire(SCOPED)  # leases the pools
    assert first.allowed
    assert limiter.admit_now([], 1.0) is None  # no scope: acquire's Decision(True)
    admitted = [limiter.admit_now(SCOPED, 1.0) for _ in range(30)]
    assert all(d is None or d.allowed for d in admitted)
    assert None in admitted  # the client's pool ran dry: acquire leases or denies
    counters = limiter.counters
    fast = sum(d is not None for d in admitted)
    assert counters["fast_admitted"] == fast and counters["decisions"] == 1 + fast
    assert counters["admitted"] == 1 + fast


@pytest.mark.asyncio
async def test_admit_now_and_acquire_decide_the_same_requests_alike():
    """Two limiters on their own clocks and stores, one asked through admit_now first (the
    stage's way), one through acquire alone: the same Decisions and counters."""
    results = []
    for first_fast in (True, False):
        limiter, clock = make()
        seen = []
        for step in range(120):
            decision = limiter.admit_now(SCOPED, 1.0) if first_fast else None
            if decision is None:
                decision = await limiter.acquire(SCOPED, 1)
            seen.append(decision)
            await clock.advance(0.02 if step % 7 else 0.3)
        results.append((seen, limiter.counters))
    (fast_seen, fast_counters), (slow_seen, slow_counters) = results
    assert fast_seen == slow_seen
    assert fast_counters == slow_counters
    assert {True, False} <= {d.allowed for d in fast_seen}


@pytest.mark.asyncio
async def test_a_fault_in_the_fast_path_applies_the_failure_mode(caplog):
    limiter, _ = make(failure_mode="closed")
    await limiter.acquire(SCOPED)

    def broken(scoped, cost):
        raise RuntimeError("bug")

    limiter._fast_admit = broken
    with caplog.at_level(logging.ERROR):
        decision = limiter.admit_now(SCOPED, 1.0)
    assert decision is not None and not decision.allowed and decision.storage_unavailable
    counters = limiter.counters
    assert counters["internal_errors"] == 1 and counters["decisions"] == 2
    assert "rate limiter failed" in caplog.text


@pytest.mark.asyncio
async def test_the_stage_answers_with_the_fast_decision_and_its_headers():
    limiter, _ = make()
    stage = rate_limit_stage(limiter, lambda context: SCOPED)

    async def call_next(request):
        return GatewayResponse(200, Headers())

    for _ in range(5):
        context = RequestContext(client_id="c1")
        response = await stage(SimpleNamespace(context=context), call_next)
        decision = REQUESTS_DECISION.get(context)
        assert decision is not None and decision.allowed
        assert list(response.headers) == [(name.lower(), value)
                                          for name, value in rate_limit_headers(decision)]
    counters = limiter.counters
    assert counters["decisions"] == 5 and counters["fast_admitted"] >= 3  # after the leases
