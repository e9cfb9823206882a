"""The first lease after a pause asks for what the key's previous lease did, so the requests
that arrive during its round trip are paid by it instead of each waiting for another lease.

`load/profile_tail.py` (200 requests/s in 2 s slices with 6 s pauses, as `make bench`): every
request among the slowest 1 % with limits on came in the first tenth of a slice, and most had
waited for a lease. The demand estimate decays within a second of a pause, so the first lease
asked for one request's cost, and the requests behind it leased one after the other.
"""

from __future__ import annotations

import asyncio

from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.clock import FakeClock, settle
from tests.unit.test_lease_waiters import HeldWrites

FAR = [ScopedLimit("client", "c1", Limit(1_000_000.0, 1_000_000.0))]


async def steady(limiter: Limiter, clock: FakeClock, requests: int, every_s: float) -> None:
    """`requests` admitted one at a time, `every_s` apart (top-ups land in between)."""
    for _ in range(requests):
        assert (await limiter.acquire(FAR)).allowed
        await clock.advance(every_s)


async def pause(limiter: Limiter, clock: FakeClock, seconds: float) -> None:
    """No traffic for `seconds`; maintenance gives the idle pool back."""
    await clock.advance(seconds)
    await limiter.maintain()


async def arrivals_during_a_held_lease(limiter: Limiter, store: HeldWrites, clock: FakeClock,
                                       later: int) -> list[asyncio.Task]:
    """One request whose lease's write is held, `later` more arriving 5 ms apart meanwhile;
    then the write lands. Returns the requests' tasks (all finished)."""
    store.held = True
    tasks = [asyncio.create_task(limiter.acquire(FAR))]
    await settle()
    for _ in range(later):
        await clock.advance(0.005)
        tasks.append(asyncio.create_task(limiter.acquire(FAR)))
        await settle()
    store.release()
    for _ in range(10):
        await settle()
    assert all(task.done() for task in tasks)
    return tasks


async def test_requests_behind_the_first_lease_after_a_pause_share_it():
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    await steady(limiter, clock, 400, 0.005)  # 200/s: top-ups of a block
    await pause(limiter, clock, 6.0)
    ks = limiter._keys[("client", "c1")]
    assert ks.tokens == 0 and limiter.counters["returns"] == 1
    writes, leases = store.writes, limiter.counters["leases"]
    tasks = await arrivals_during_a_held_lease(limiter, store, clock, later=5)
    assert all(task.result().allowed for task in tasks)
    assert limiter.counters["leases"] - leases == 1  # one lease paid all six
    assert store.writes - writes == 1
    assert ks.tokens >= 100  # the previous block's size, not one request's


async def test_a_key_used_rarely_never_leases_a_block():
    """No earlier block: each lease after a pause is sized by the key's own small demand (one
    request and its top-up), and a request costs at most a lease, a top-up and a return."""
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    for _ in range(5):
        await steady(limiter, clock, 1, 0.0)
        await pause(limiter, clock, 10.0)
    counters = limiter.counters
    assert counters["lease_tokens"] <= 5 * 13  # one request and a top-up of 12 at most
    assert store.writes <= 5 * 3


async def test_a_key_that_stays_quiet_after_a_pause_is_sized_by_demand_again():
    """A busy key, a pause, then one request: that lease asks for the old block (returned
    as unused at the next pause), and the lease after that pause is demand-sized again."""
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    await steady(limiter, clock, 400, 0.005)
    await pause(limiter, clock, 6.0)
    ks = limiter._keys[("client", "c1")]
    await steady(limiter, clock, 1, 0.0)
    assert ks.tokens >= 100
    await pause(limiter, clock, 6.0)
    assert ks.tokens == 0
    tokens = limiter.counters["lease_tokens"]
    await steady(limiter, clock, 1, 0.0)
    assert limiter.counters["lease_tokens"] - tokens <= 13  # a request and its top-up


async def test_a_busy_key_forgotten_in_a_long_pause_resumes_at_its_lease_goal():
    """Maintenance drops a key unused for `forget_s` (30 s); `make bench`'s processes rest
    20-30 s between slices, more on a slow machine. The key's lease goal outlives its state,
    so the first lease after such a pause is sized as after a shorter one."""
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    await steady(limiter, clock, 400, 0.005)
    await pause(limiter, clock, 6.0)  # the idle pool goes back
    await pause(limiter, clock, 40.0)  # and the key is forgotten
    assert ("client", "c1") not in limiter._keys
    leases = limiter.counters["leases"]
    tasks = await arrivals_during_a_held_lease(limiter, store, clock, later=5)
    assert all(task.result().allowed for task in tasks)
    assert limiter.counters["leases"] - leases == 1  # one lease paid all six
    assert limiter._keys[("client", "c1")].tokens >= 100


async def test_a_rarely_used_key_forgotten_leases_as_after_a_shorter_pause():
    """A key used once in a while is sized by its own small demand after it was forgotten
    too (one request and a top-up of 12 at most), as after a pause under `forget_s`."""
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    for _ in range(5):
        await steady(limiter, clock, 1, 0.0)
        await pause(limiter, clock, 6.0)
        await pause(limiter, clock, 40.0)
        assert ("client", "c1") not in limiter._keys
    assert limiter.counters["lease_tokens"] <= 5 * 13
    assert len(limiter._maintenance.goals) == 1


async def test_the_remembered_goals_are_bounded(monkeypatch):
    from function_app.ratelimit.lease import maintenance

    monkeypatch.setattr(maintenance, "GOALS_KEPT", 3)
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    for n in range(5):
        scoped = [ScopedLimit("client", f"c{n}", FAR[0].limit)]
        for _ in range(50):
            assert (await limiter.acquire(scoped)).allowed
            await clock.advance(0.005)
    await pause(limiter, clock, 6.0)
    await pause(limiter, clock, 40.0)
    assert list(limiter._maintenance.goals) == [("client", f"c{n}") for n in (2, 3, 4)]
