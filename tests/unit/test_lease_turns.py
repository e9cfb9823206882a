"""Instances that take turns on a key: the first lease after a pause reads the row first when
others wrote it during an earlier pause, instead of writing with a stale ETag.

`make bench` gives its three defaults processes 2 s slices in turn, so each resumes after
about 20 s on rows the other two wrote. Before: the lease's write met a 412, slept the
conflict back-off, read and wrote again (three round trips with the requests waiting), and
the 412 made every top-up of the next `read_first_s` read first too
(docs/perf/pass12-tail.md, `load/tail_turns.py`).
"""

from __future__ import annotations

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.clock import FakeClock

FAR = [ScopedLimit("global", "*", Limit(1_000_000.0, 1_000_000.0)),
       ScopedLimit("client", "c1", Limit(1_000_000.0, 1_000_000.0))]


class Calls(MemoryRateLimitStore):
    """Every call in order: R (read), W (write), C (a write that met a 412)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    async def read(self, key):
        self.log.append("R")
        return await super().read(key)

    async def write(self, key, fields, etag):
        try:
            result = await super().write(key, fields, etag)
        except Exception:
            self.log.append("C")
            raise
        self.log.append("W")
        return result


class Sleeps:
    """The conflict back-off's sleeps (none really slept)."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, seconds: float) -> None:
        self.count += 1


def limiter(store: Calls, clock: FakeClock, name: str, sleeps: Sleeps) -> Limiter:
    return Limiter(store, clock, LimiterConfig(), name, background=False, jitter_sleep=sleeps)


async def turn(limiter: Limiter, clock: FakeClock, requests: int = 100) -> None:
    """`requests` at 200/s, then a pause in which maintenance gives the pools back."""
    for _ in range(requests):
        assert (await limiter.acquire(FAR)).allowed
        await clock.advance(0.005)
    await clock.advance(2.0)
    await limiter.maintain()
    await clock.advance(4.0)


async def test_a_resumed_instance_reads_first_on_rows_others_wrote():
    store, clock, sleeps = Calls(), FakeClock(), Sleeps()
    a, b = limiter(store, clock, "a", sleeps), limiter(store, clock, "b", sleeps)
    await turn(a, clock)
    await turn(b, clock)
    store.log.clear()
    await turn(a, clock)  # learns it: each key's first write meets a 412
    assert store.log.count("C") == 2 and sleeps.count == 2
    await turn(b, clock)
    store.log.clear()
    conflicts, slept = a.counters["conflicts"], sleeps.count
    assert (await a.acquire(FAR)).allowed
    assert store.log == ["R", "W", "R", "W"]  # each key: a read, then the write that pays
    assert a.counters["conflicts"] == conflicts and sleeps.count == slept


async def test_top_ups_within_a_turn_write_without_a_read():
    store, clock, sleeps = Calls(), FakeClock(), Sleeps()
    a, b = limiter(store, clock, "a", sleeps), limiter(store, clock, "b", sleeps)
    for _ in range(2):
        await turn(a, clock)
        await turn(b, clock)
    store.log.clear()
    for _ in range(400):  # 2 s at 200/s: top-ups of a block
        assert (await a.acquire(FAR)).allowed
        await clock.advance(0.005)
    assert store.log[:4] == ["R", "W", "R", "W"] and "C" not in store.log
    assert store.log[4:].count("R") == 0 and store.log.count("W") >= 6


async def test_a_key_no_longer_shared_goes_back_to_one_write():
    """The read after a pause finds the row as this instance left it: the next pause's lease
    writes with the ETag in hand again."""
    store, clock, sleeps = Calls(), FakeClock(), Sleeps()
    a, b = limiter(store, clock, "a", sleeps), limiter(store, clock, "b", sleeps)
    await turn(a, clock)
    await turn(b, clock)
    await turn(a, clock)  # a 412 on each key: marked
    await turn(a, clock)  # nobody else wrote: the read finds a's own ETag
    store.log.clear()
    assert (await a.acquire(FAR)).allowed
    assert store.log == ["W", "W"]


async def test_an_instance_alone_never_reads_after_a_pause():
    store, clock, sleeps = Calls(), FakeClock(), Sleeps()
    a = limiter(store, clock, "a", sleeps)
    await turn(a, clock)
    for _ in range(3):
        store.log.clear()
        await turn(a, clock, requests=1)
        assert store.log[0] != "R" and "C" not in store.log


async def test_a_pause_shorter_than_a_lease_s_life_trusts_the_etag():
    """Under `lease_ttl_s` another writer is less likely than not: the write goes first (a
    read every time would cost more than the 412s it saves, load/simulate.py N = 10)."""
    store, clock, sleeps = Calls(), FakeClock(), Sleeps()
    a, b = limiter(store, clock, "a", sleeps), limiter(store, clock, "b", sleeps)
    await turn(a, clock)
    await turn(b, clock)
    await turn(a, clock)  # marked
    for _ in range(100):
        assert (await a.acquire(FAR)).allowed
        await clock.advance(0.005)
    await clock.advance(2.0)
    await a.maintain()  # the pools go back after idle_return_s
    store.log.clear()
    assert (await a.acquire(FAR)).allowed
    assert store.log == ["W", "W"]


async def test_a_sparse_key_keeps_the_write_first():
    """A lease aiming under half a block (a key far slower than a round trip: no queue
    behind its first lease) writes first as before, whoever else wrote the row."""
    store, clock, sleeps = Calls(), FakeClock(), Sleeps()
    a, b = limiter(store, clock, "a", sleeps), limiter(store, clock, "b", sleeps)
    for _ in range(3):
        await turn(a, clock, requests=2)
        await turn(b, clock, requests=2)
    store.log.clear()
    assert (await a.acquire(FAR)).allowed
    assert store.log[0] == "C" and store.log.count("R") == 2  # as before: 412, read, write
