"""The token reservation waits out short refusals only: a cost no bucket can ever hold is
refused after one acquire, not retried until the queue time runs out."""

import asyncio

from function_app.openai.bill import QUEUE_S, _acquire_patiently
from function_app.ratelimit.limits import Decision
from tests.support.clock import FakeClock, settle


async def patiently(limiter, cost: int, clock: FakeClock) -> Decision:
    """_acquire_patiently with fake time moving in 0.05 s steps past the queue time."""
    task = asyncio.create_task(_acquire_patiently(limiter, [], cost, clock))
    await settle()
    for _ in range(int(QUEUE_S / 0.05) + 2):
        if task.done():
            break
        await clock.advance(0.05)
    return await task


class Refusing:
    def __init__(self, decision: Decision):
        self.decision, self.calls = decision, 0

    async def acquire(self, scoped, cost=1):
        self.calls += 1
        return self.decision

    def adjust(self, scoped, delta):
        pass


async def test_a_cost_that_never_fits_is_refused_after_one_acquire():
    clock = FakeClock()
    limiter = Refusing(Decision(False, retry_after_s=0.0, reason="exceeds_limit"))
    decision = await patiently(limiter, 10**9, clock)
    assert decision.reason == "exceeds_limit" and limiter.calls == 1


async def test_a_short_refusal_is_waited_out_until_the_queue_time():
    clock = FakeClock()
    limiter = Refusing(Decision(False, retry_after_s=0.1, reason="limited"))
    start = clock.now()
    decision = await patiently(limiter, 10, clock)
    assert decision.reason == "limited" and limiter.calls > 1
    assert clock.now() - start <= QUEUE_S


class ContendedThenFree:
    """Refused for contention (Retry-After 1 s, meant for clients) `times` times, then admits."""

    def __init__(self, times: int):
        self.times, self.calls = times, 0

    async def acquire(self, scoped, cost=1):
        self.calls += 1
        if self.calls <= self.times:
            return Decision(False, retry_after_s=1.0, reason="contention")
        return Decision(True)

    def adjust(self, scoped, delta):
        pass


async def test_contention_is_leased_again_within_the_queue_time_not_refused():
    # Instances leasing one row at once can exhaust their conflict retries; the row still has
    # tokens, so a token reservation tries again after a short pause instead of a 429.
    clock = FakeClock()
    limiter = ContendedThenFree(times=3)
    start = clock.now()
    decision = await patiently(limiter, 1030, clock)
    assert decision.allowed and limiter.calls == 4
    assert clock.now() - start <= QUEUE_S


async def test_contention_that_lasts_past_the_queue_time_is_refused():
    clock = FakeClock()
    limiter = ContendedThenFree(times=10**6)
    start = clock.now()
    decision = await patiently(limiter, 1030, clock)
    assert not decision.allowed and decision.reason == "contention"
    assert 1 < limiter.calls and clock.now() - start <= QUEUE_S + 0.05
