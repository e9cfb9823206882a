"""The token bucket as a pure function, with a fake clock (plain floats)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function_app.ratelimit.bucket import BucketState, decide, refill
from function_app.ratelimit.limits import MAX_RETRY_AFTER_S, Limit

T0 = 1_700_000_000.0


def test_a_new_bucket_admits_burst_then_denies_with_the_time_to_one_token():
    limit = Limit(rate=10, burst=5)
    state = None
    for _ in range(5):
        verdict, state = decide(state, limit, 1, T0)
        assert verdict.allowed
    verdict, state = decide(state, limit, 1, T0)
    assert not verdict.allowed
    assert verdict.retry_after_s == pytest.approx(0.1)
    assert verdict.reset_s == pytest.approx(0.5)


def test_tokens_refill_at_rate_up_to_burst():
    limit = Limit(rate=10, burst=5)
    assert refill(BucketState(0, T0), limit, T0 + 0.2).tokens == pytest.approx(2)
    assert refill(BucketState(0, T0), limit, T0 + 60).tokens == 5


def test_cost_is_charged_whole_and_a_denial_charges_nothing():
    limit = Limit(rate=1, burst=10)
    verdict, state = decide(None, limit, 7, T0)
    assert verdict.allowed and verdict.remaining == 3
    verdict, after = decide(state, limit, 4, T0)
    assert not verdict.allowed and after.tokens == 3
    assert verdict.retry_after_s == pytest.approx(1.0)


def test_a_cost_above_burst_or_a_zero_rate_reports_the_maximum_wait():
    verdict, _ = decide(None, Limit(rate=1, burst=2), 3, T0)
    assert not verdict.allowed and verdict.retry_after_s == MAX_RETRY_AFTER_S
    _, state = decide(None, Limit(rate=0, burst=1), 1, T0)
    verdict, _ = decide(state, Limit(rate=0, burst=1), 1, T0 + 1e6)
    assert not verdict.allowed and verdict.retry_after_s == MAX_RETRY_AFTER_S


def test_a_clock_behind_the_last_write_credits_nothing_twice():
    limit = Limit(rate=10, burst=100)
    state = BucketState(0, T0 + 1.0)  # written by an instance whose clock is 1 s ahead
    behind = refill(state, limit, T0)
    assert behind.tokens == 0 and behind.ts == T0 + 1.0
    assert refill(behind, limit, T0 + 1.5).tokens == pytest.approx(5)


def test_invalid_limits_are_refused():
    with pytest.raises(ValueError):
        Limit(rate=-1, burst=1)
    with pytest.raises(ValueError):
        Limit(rate=1, burst=math.inf)


arrivals = st.lists(
    st.tuples(st.floats(0, 2.0, allow_nan=False), st.integers(1, 5)), min_size=1, max_size=120
)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0, 50, allow_nan=False), burst=st.integers(0, 20), arrivals=arrivals,
)
def test_admitted_cost_in_any_interval_never_exceeds_burst_plus_rate_times_elapsed(
    rate, burst, arrivals
):
    limit = Limit(rate, float(burst))
    now, state, admitted = T0, None, []
    for gap, cost in arrivals:
        now += gap
        verdict, state = decide(state, limit, cost, now)
        assert verdict.remaining >= 0
        if verdict.allowed:
            admitted.append((now, cost))
    for i, (start, _) in enumerate(admitted):
        total = 0
        for end, cost in admitted[i:]:
            total += cost
            assert total <= burst + rate * (end - start) + 1e-6
