"""Content Safety behind its cache, rate limit and health state, on a fake clock."""

import pytest

from function_app.guardrails.guarded import GuardedSafety
from function_app.guardrails.safety import SafetyUnavailable
from tests.support.clock import FakeClock
from tests.support.safety_fake import MemorySafety

CATS = ("Violence",)


async def test_answers_are_reused_for_the_same_text_until_they_expire():
    clock, inner = FakeClock(), MemorySafety()
    guarded = GuardedSafety(inner, clock, rps=100, ttl_s=60)
    await guarded.analyze("hello", CATS)
    await guarded.analyze("hello", CATS)
    await guarded.shield("hello", ["doc"])
    assert len(inner.calls) == 2 and guarded.counters["cache_hits"] == 1
    await clock.advance(61)
    await guarded.analyze("hello", CATS)
    assert len(inner.calls) == 3


async def test_calls_over_the_rate_limit_fail_at_once_without_reaching_the_service():
    clock, inner = FakeClock(), MemorySafety()
    guarded = GuardedSafety(inner, clock, rps=2)  # burst 4
    for i in range(4):
        await guarded.analyze(f"text {i}", CATS)
    with pytest.raises(SafetyUnavailable, match="rate limit"):
        await guarded.analyze("one more", CATS)
    assert len(inner.calls) == 4 and guarded.counters["limited"] == 1
    await clock.advance(0.5)  # one token back
    await guarded.analyze("one more", CATS)


async def test_a_retry_after_from_the_service_pauses_calls_and_the_state_follows():
    clock = FakeClock()

    class Throttled(MemorySafety):
        async def analyze(self, text, categories):
            self.calls.append(("analyze", text))
            raise SafetyUnavailable("analyze: HTTP 429", retry_after_s=2)

    inner = Throttled()
    guarded = GuardedSafety(inner, clock, rps=100)
    assert guarded.state["state"] == "unknown"
    with pytest.raises(SafetyUnavailable):
        await guarded.analyze("a", CATS)
    with pytest.raises(SafetyUnavailable, match="Retry-After"):
        await guarded.analyze("b", CATS)
    assert len(inner.calls) == 1 and guarded.state["state"] == "unavailable"
    await clock.advance(2.5)  # the pause is over: the next call reaches the service again
    with pytest.raises(SafetyUnavailable, match="HTTP 429"):
        await guarded.analyze("c", CATS)
    assert len(inner.calls) == 2


async def test_refused_credentials_are_their_own_state():
    guarded = GuardedSafety(MemorySafety(refused=True), FakeClock(), rps=10)
    with pytest.raises(SafetyUnavailable):
        await guarded.shield("x", [])
    assert guarded.state["state"] == "refused" and "401" in guarded.state["detail"]


async def test_an_idle_instance_probes_the_service_when_asked_for_its_state():
    from tests.support.clock import settle

    clock, inner = FakeClock(), MemorySafety(down=True)
    guarded = GuardedSafety(inner, clock, rps=10)
    guarded.probe_if_stale()
    await settle()
    assert guarded.state["state"] == "unavailable" and len(inner.calls) == 1
    guarded.probe_if_stale()  # heard from it just now: no second probe
    await settle()
    assert len(inner.calls) == 1
    inner.down = False
    await clock.advance(31)
    guarded.probe_if_stale()
    await settle()
    assert guarded.state["state"] == "ok" and len(inner.calls) == 2
    await guarded.aclose()
