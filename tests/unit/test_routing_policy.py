"""The pure routing policies: picking a member, retry decisions, back-off, budget, breaker."""

import random
from collections import Counter

import pytest

from function_app.routing.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerConfig
from function_app.routing.budget import RetryBudget
from function_app.routing.policy import (
    Action,
    Kind,
    Outcome,
    decide,
    next_delay,
    parse_retry_after,
    pick_backend,
)
from function_app.routing.pools import Member

A, B, C = Member("a", "http://a"), Member("b", "http://b"), Member("c", "http://c", priority=1)


def everyone(_member):
    return True


def test_pick_prefers_the_highest_priority_with_a_usable_member():
    rng = random.Random(1)
    assert {pick_backend([A, B, C], everyone, {}, rng).name for _ in range(50)} == {"a", "b"}
    only_c = pick_backend([A, B, C], lambda m: m.name == "c", {}, rng)
    assert only_c == C
    assert pick_backend([A, B], lambda m: False, {}, rng) is None


def test_pick_follows_weights_when_idle():
    heavy = Member("heavy", "http://h", weight=3)
    rng = random.Random(7)
    counts = Counter(pick_backend([A, heavy], everyone, {}, rng).name for _ in range(4000))
    assert 0.7 < counts["heavy"] / 4000 < 0.8  # 3:1 by weight


def test_power_of_two_choices_sends_to_the_less_loaded():
    rng = random.Random(3)
    picks = Counter(pick_backend([A, B], everyone, {"a": 10, "b": 0}, rng).name
                    for _ in range(100))
    assert picks == {"b": 100}


def test_pick_avoids_members_already_tried_while_another_is_usable():
    rng = random.Random(5)
    assert all(pick_backend([A, B, C], everyone, {}, rng, avoid={"a"}) == B for _ in range(20))
    # a lower priority untried member beats retrying the tried one
    assert pick_backend([A, C], everyone, {}, rng, avoid={"a"}) == C
    assert pick_backend([A], everyone, {}, rng, avoid={"a"}) == A


def refused():
    return Outcome(Kind.CONNECT)


@pytest.mark.parametrize("outcome, method, repeatable, expected", [
    (Outcome(Kind.CONNECT), "POST", False, Action.RETRY),  # never reached the backend
    (Outcome(Kind.RESET), "POST", False, Action.RETURN),  # may have been processed
    (Outcome(Kind.RESET), "POST", True, Action.RETRY),  # the route says it is safe
    (Outcome(Kind.RESET), "GET", False, Action.RETRY),
    (Outcome(Kind.TIMEOUT), "GET", False, Action.RETRY),
    (Outcome(Kind.ANSWER, 503), "POST", False, Action.RETRY),  # a refusal
    (Outcome(Kind.ANSWER, 429), "POST", False, Action.RETRY),
    (Outcome(Kind.ANSWER, 502), "POST", False, Action.RETURN),
    (Outcome(Kind.ANSWER, 502), "GET", False, Action.RETRY),
    (Outcome(Kind.ANSWER, 500), "GET", False, Action.RETURN),  # not retried, no fallback
    (Outcome(Kind.ANSWER, 200), "GET", False, Action.RETURN),
    (Outcome(Kind.ANSWER, 404), "GET", False, Action.RETURN),
])
def test_decide_retries_only_what_is_safe_and_retryable(outcome, method, repeatable, expected):
    assert decide(outcome, method=method, repeatable=repeatable, tries=1, max_tries=2,
                  next_fallback_on=None) is expected


def test_decide_falls_back_when_tries_are_spent_and_the_fallback_takes_the_failure():
    args = {"method": "GET", "repeatable": False, "tries": 2, "max_tries": 2}
    assert decide(refused(), next_fallback_on=frozenset({"5xx"}), **args) is Action.FALLBACK
    assert decide(refused(), next_fallback_on=frozenset({"429"}), **args) is Action.RETURN
    assert decide(Outcome(Kind.ANSWER, 500), next_fallback_on=frozenset({"5xx"}),
                  **{**args, "tries": 1}) is Action.FALLBACK
    too_long = Outcome(Kind.ANSWER, 400, context_length=True)
    assert decide(too_long, next_fallback_on=frozenset({"context_length"}), **args) \
        is Action.FALLBACK
    assert decide(too_long, next_fallback_on=frozenset({"5xx"}), **args) is Action.RETURN


def test_next_delay_backs_off_with_jitter_and_honours_retry_after_within_the_deadline():
    rng = random.Random(0)
    delays = [next_delay(n, rng, 10.0) for n in (1, 2, 3, 8)]
    assert 0 <= delays[0] <= 0.025 and 0 <= delays[1] <= 0.05 and delays[3] <= 0.25
    assert next_delay(1, rng, 10.0, retry_after_s=1.0) == 1.0
    assert next_delay(1, rng, 1.0, retry_after_s=1.0) is None  # would leave no time
    assert next_delay(1, rng, 0.01) is None


@pytest.mark.parametrize("raw, seconds", [("2", 2.0), (" 0.5 ", 0.5), (None, None),
                                          ("Wed, 21 Oct 2015 07:28:00 GMT", None),
                                          ("-1", None)])
def test_retry_after_in_seconds_only(raw, seconds):
    assert parse_retry_after(raw) == seconds


@pytest.mark.parametrize("raw, seconds", [("2500", 2.5), (" 40 ", 0.04), ("3599999", 3599.999),
                                          ("3600000", None), ("-1", None), ("soon", None),
                                          ("nan", None), (None, None)])
def test_retry_after_ms_is_read_in_seconds_under_an_hour(raw, seconds):
    assert parse_retry_after(raw, per_s=1000) == seconds


def test_budget_allows_a_floor_plus_a_share_of_requests_over_the_window():
    budget = RetryBudget(ratio=0.2, min_per_s=1, window_s=10)
    now = 1000.0
    for _ in range(100):
        budget.record_request(now)
    granted = sum(budget.try_spend(now) for _ in range(100))
    assert granted == 30  # 1/s x 10 s + 20 % of 100
    assert not budget.try_spend(now + 5)
    # the window slides: after it, the old requests and retries are forgotten
    assert budget.try_spend(now + 11)
    assert budget.allowance(now + 11) == 10


CONFIG = BreakerConfig(failures=3, failure_rate=0.5, window_s=10, min_requests=10, open_s=2)


def test_breaker_opens_on_consecutive_failures_and_probes_once_when_half_open():
    breaker, now = Breaker(CONFIG), 100.0
    assert breaker.record(False, now) is None and breaker.record(False, now) is None
    opened = breaker.record(False, now)
    assert opened is not None and opened.state == OPEN and opened.until == now + 2
    assert not breaker.allows(now + 1)
    assert breaker.view(now + 2) == HALF_OPEN
    assert breaker.acquire(now + 2)
    assert not breaker.acquire(now + 2.1)  # one probe at a time
    closed = breaker.record(True, now + 2.2)
    assert closed is not None and closed.state == CLOSED and breaker.allows(now + 2.2)


def test_a_failed_probe_opens_it_again():
    breaker, now = Breaker(CONFIG), 100.0
    for _ in range(3):
        breaker.record(False, now)
    assert breaker.acquire(now + 2)
    again = breaker.record(False, now + 2.1)
    assert again.state == OPEN and again.until == pytest.approx(now + 4.1)


def test_breaker_opens_on_the_failure_rate_over_the_window():
    breaker, now = Breaker(CONFIG), 100.0
    moved = None
    for i in range(10):
        moved = breaker.record(i % 2 == 0, now) or moved  # alternate: never 3 in a row
    assert moved is not None and moved.state == OPEN


def test_success_resets_the_consecutive_count():
    breaker = Breaker(CONFIG)
    for ok in (False, False, True, False, False):
        assert breaker.record(ok, 100.0) is None


def test_breaker_adopts_only_newer_shared_states():
    from function_app.routing.breaker import SharedState

    breaker = Breaker(CONFIG)
    assert breaker.adopt(SharedState(OPEN, 50.0, 60.0))
    assert not breaker.allows(55.0)
    assert not breaker.adopt(SharedState(CLOSED, 40.0))
    assert breaker.adopt(SharedState(CLOSED, 58.0)) and breaker.allows(58.0)
