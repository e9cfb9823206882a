"""Breakers shared through a store, storage failures, and the health checks' timer body."""

import asyncio

import pytest

from function_app import app as app_module
from function_app.core.store_errors import StoreUnavailable
from function_app.routing.breaker import CLOSED, OPEN, BreakerConfig
from function_app.routing.breakers import SharedBreakers
from function_app.routing.policy import Action, Kind, Outcome, decide
from function_app.routing.pools import Member
from function_app.routing.probes import run_health_checks
from function_app.routing.store import ProbeResult
from tests.support.breakerstore_memory import MemoryRoutingStore
from tests.support.clock import FakeClock, settle
from tests.support.stores import FlakyRoutingStore

NODE = Member("node", "http://n")
CONFIG = BreakerConfig(failures=2, open_s=5)


def pair(store, clock):
    return [SharedBreakers(store, store, clock, CONFIG, cache_s=0.5) for _ in range(2)]


async def test_one_instance_opening_a_breaker_opens_it_for_the_other_on_its_next_read():
    store, clock = MemoryRoutingStore(), FakeClock()
    first, second = pair(store, clock)
    first.record(NODE, False)
    first.record(NODE, False)
    await clock.advance(0)  # the background write runs
    assert first.state("node") == OPEN and second.state("node") == CLOSED
    await second.refresh()
    assert second.state("node") == OPEN and not second.usable(NODE)
    assert first.counters["writes"] == 1 and second.counters["adopted"] == 1


async def test_a_successful_probe_closes_it_everywhere():
    store, clock = MemoryRoutingStore(), FakeClock()
    first, second = pair(store, clock)
    for _ in range(2):
        first.record(NODE, False)
    await clock.advance(0)
    await second.refresh()
    clock.set(clock.now() + 5)
    assert second.acquire(NODE)  # half-open: one probe
    second.record(NODE, True)
    await clock.advance(0)
    await first.refresh()
    assert first.state("node") == CLOSED == second.state("node")


async def test_concurrent_openings_resolve_through_the_etag():
    store, clock = MemoryRoutingStore(), FakeClock()
    first, second = pair(store, clock)
    for breakers in (first, second):
        breakers.record(NODE, False)
        breakers.record(NODE, False)
    await clock.advance(0)
    assert first.counters["writes"] + second.counters["writes"] >= 1
    assert second.counters["conflicts"] + first.counters["conflicts"] >= 1
    rows = await store.read_breakers()
    assert [row.state.state for row in rows] == [OPEN]


async def test_with_storage_down_breakers_work_per_instance():
    store, clock = FlakyRoutingStore(MemoryRoutingStore()), FakeClock()
    store.down = True
    first, second = pair(store, clock)
    for _ in range(2):
        first.record(NODE, False)
    await clock.advance(0)
    await second.refresh()
    assert first.state("node") == OPEN and not first.storage_healthy
    assert second.state("node") == CLOSED and not second.storage_healthy
    store.down = False
    await first.refresh()
    assert first.storage_healthy


async def test_members_whose_fresh_probe_failed_are_skipped_until_it_is_stale():
    from function_app.routing.store import ProbeResult

    store, clock = MemoryRoutingStore(), FakeClock()
    breakers = SharedBreakers(store, store, clock, CONFIG, probe_stale_s=30)
    await store.record_probe(ProbeResult("node", False, clock.now(), 1.0))
    await breakers.refresh()
    assert not breakers.usable(NODE) and breakers.usable(NODE, strict=False)
    clock.set(clock.now() + 31)
    assert breakers.usable(NODE)


async def test_a_member_probed_down_gets_one_trial_per_open_s_and_a_success_brings_it_back():
    from function_app.routing.store import ProbeResult

    store, clock = MemoryRoutingStore(), FakeClock()
    breakers = SharedBreakers(store, store, clock, CONFIG, probe_stale_s=30)
    await store.record_probe(ProbeResult("node", False, clock.now(), 1.0))
    await breakers.refresh()
    clock.set(clock.now() + CONFIG.open_s)
    assert breakers.usable(NODE) and breakers.acquire(NODE)  # the trial
    breakers.record(NODE, False)
    assert not breakers.usable(NODE)  # the next trial waits open_s after this one
    clock.set(clock.now() + CONFIG.open_s)
    assert breakers.usable(NODE) and breakers.acquire(NODE)
    breakers.record(NODE, True)
    assert not breakers.probed_down("node") and breakers.usable(NODE)
    # a later failed probe marks it down again
    await store.record_probe(ProbeResult("node", False, clock.now() + 1, 1.0))
    clock.set(clock.now() + 3)  # past PROBES_EVERY_S, so the next refresh reads the probes
    await breakers.refresh()
    assert breakers.probed_down("node") and not breakers.usable(NODE)


async def test_health_checks_probe_once_per_lease_and_record_results():
    store, clock = MemoryRoutingStore(), FakeClock()
    seen = []

    async def probe(url, timeout_s):
        seen.append(url)
        if "down" in url:
            raise ConnectionError("refused")
        return 200

    backends = {"python": "http://up:1", "node": "http://down:2"}
    done = await run_health_checks(backends, probe, store, clock, "gw-1", timeout_s=1,
                                   lease_s=25, phase_s=0)
    assert done["ran"] and done["results"] == {"python": {"ok": True, "status": 200},
                                               "node": {"ok": False, "status": 0}}
    assert sorted(seen) == ["http://down:2/healthz", "http://up:1/healthz"]
    other = await run_health_checks(backends, probe, store, clock, "gw-2", timeout_s=1,
                                    lease_s=25, phase_s=0)
    assert other == {"ran": False, "reason": "another instance holds the lease"}
    clock.set(clock.now() + 26)  # the holder stopped renewing: another instance takes over
    assert (await run_health_checks(backends, probe, store, clock, "gw-2", timeout_s=1,
                                    lease_s=25, phase_s=0))["ran"]
    assert {p.backend: p.ok for p in await store.read_probes()} == {"python": True,
                                                                   "node": False}


async def test_health_checks_skip_quietly_when_storage_is_down():
    store = FlakyRoutingStore(MemoryRoutingStore())
    store.down = True

    async def probe(url, timeout_s):
        raise AssertionError("no probe without the lease")

    done = await run_health_checks({"python": "http://x"}, probe, store, FakeClock(), "gw",
                                   timeout_s=1, lease_s=5, phase_s=0)
    assert done == {"ran": False, "reason": "storage unavailable"}


async def test_a_run_records_every_probe_in_one_storage_call():
    store, clock = MemoryRoutingStore(), FakeClock()

    async def probe(url, timeout_s):
        return 200

    backends = {"python": "http://a", "node": "http://b", "other": "http://c"}
    done = await run_health_checks(backends, probe, store, clock, "gw", timeout_s=1,
                                   lease_s=25, phase_s=0)
    assert done["recorded"] == 3 and store.probe_batches == 1
    assert {p.backend for p in await store.read_probes()} == set(backends)


async def test_a_failed_batch_records_none_and_says_so(caplog):
    class BatchDown(MemoryRoutingStore):
        async def record_probes(self, results):
            raise StoreUnavailable("injected")

    store = BatchDown()

    async def probe(url, timeout_s):
        return 200

    done = await run_health_checks({"python": "http://a", "node": "http://b"}, probe, store,
                                   FakeClock(), "gw", timeout_s=1, lease_s=25, phase_s=0)
    assert done["ran"] and done["recorded"] == 0
    assert done["results"] == {"python": {"ok": True, "status": 200},
                               "node": {"ok": True, "status": 200}}
    assert await store.read_probes() == []
    assert "could not record the probes of python, node" in caplog.text


async def test_a_run_waits_the_phase_before_touching_storage_unless_it_holds_the_lease(
        monkeypatch):
    from function_app.routing import probes

    monkeypatch.setattr(probes, "_holding", set())
    store, clock = MemoryRoutingStore(), FakeClock()
    calls = []
    real = store.take_lease

    async def take_lease(*args):
        calls.append(clock.now())
        return await real(*args)

    store.take_lease = take_lease

    async def probe(url, timeout_s):
        return 200

    def run(holder):
        return asyncio.ensure_future(run_health_checks(
            {"python": "http://a"}, probe, store, clock, holder, timeout_s=1, lease_s=25,
            phase_s=0.25))

    start = clock.now()
    first = run("gw-a")
    await settle()  # the run starts and waits
    await clock.advance(0.125)
    assert calls == [] and not first.done()
    await clock.advance(0.125)
    assert first.done() and first.result()["ran"] and calls == [start + 0.25]
    # the holder renews at once on its next run ...
    renewal = run("gw-a")
    await settle()
    assert renewal.done() and renewal.result()["ran"] and calls[-1] == start + 0.25
    # ... and another process, not holding it, waits its phase, finds it held, and waits
    # again next time
    for _ in range(2):
        other = run("gw-b")
        await settle()
        assert not other.done()
        await clock.advance(0.25)
        assert other.result() == {"ran": False, "reason": "another instance holds the lease"}


def test_the_phase_is_drawn_once_per_process_bounded_and_seedable(monkeypatch):
    import random

    from function_app.routing import probes

    monkeypatch.setattr(probes, "_phase", [])
    first = probes.process_phase(random.Random(7))
    assert 0 <= first < probes.PHASE_MAX_S
    assert probes.process_phase(random.Random(8)) == first  # drawn once: the same every run
    monkeypatch.setattr(probes, "_phase", [])
    assert probes.process_phase(random.Random(7)) == first  # seeded: deterministic
    phases = set()
    for seed in range(50):
        monkeypatch.setattr(probes, "_phase", [])
        phases.add(probes.process_phase(random.Random(seed)))
    assert len(phases) == 50 and all(0 <= p < probes.PHASE_MAX_S for p in phases)
    assert probes.PHASE_MAX_S <= 0.5  # short of a one-second schedule's step


async def test_the_timer_function_runs_the_checks_of_the_installed_gateway(install):
    await install()
    instance = await app_module.gateway.get()
    calls = []

    async def checks():
        calls.append(1)
        return {"ran": True}

    instance.health_checks = checks

    class Timer:
        past_due = True

    await app_module.health_checks(Timer())
    assert calls == [1]
    instance.health_checks = None
    assert (await app_module.run_health_checks())["ran"] is False


@pytest.mark.parametrize("outcome, repeatable, expected", [
    (Outcome(Kind.RESET), False, Action.RETURN),  # may still be working: not moved
    (Outcome(Kind.RESET), True, Action.FALLBACK),
    (Outcome(Kind.ANSWER, 500), False, Action.FALLBACK),  # its work is over
    (Outcome(Kind.CONNECT), False, Action.FALLBACK),
])
def test_a_post_moves_to_the_fallback_only_when_it_cannot_run_twice(outcome, repeatable,
                                                                    expected):
    assert decide(outcome, method="POST", repeatable=repeatable, tries=2, max_tries=2,
                  next_fallback_on=frozenset({"5xx"})) is expected


def _states():
    """(name, setup) pairs: each puts a SharedBreakers and its clock in one breaker/probe
    state that a lone member's pick can meet."""
    from function_app.routing.store import ProbeResult

    def closed(b, clock):
        pass

    def opened(b, clock):
        for _ in range(CONFIG.failures):
            b.record(NODE, False)

    def half_open(b, clock):
        opened(b, clock)
        clock.set(clock.now() + CONFIG.open_s)

    def half_open_probing(b, clock):
        half_open(b, clock)
        assert b.breaker("node").acquire(clock.now())  # the probe is out

    def probed_down(b, clock):
        b.probes["node"] = ProbeResult("node", False, clock.now(), 1.0)

    def probed_down_trial_due(b, clock):
        probed_down(b, clock)
        clock.set(clock.now() + CONFIG.open_s)

    def probed_down_and_open(b, clock):
        probed_down_trial_due(b, clock)
        opened(b, clock)

    def held(b, clock):
        b.cool_down(NODE, 30)

    return [closed, opened, half_open, half_open_probing, probed_down, probed_down_trial_due,
            probed_down_and_open, held]


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("state", _states(), ids=lambda f: f.__name__)
async def test_take_is_usable_then_acquire(state, strict):
    """`take` (a lone member's pick, one call) decides and claims exactly as `usable` then
    `acquire` did: the same answer, the same half-open claim, the same trial mark; and the
    next pick after it is answered the same too."""
    results = []
    for one_call in (True, False):
        clock = FakeClock()
        b = SharedBreakers(None, None, clock, CONFIG, probe_stale_s=30)
        state(b, clock)
        picks = []
        for _ in range(2):
            picks.append(b.take(NODE, strict) if one_call
                         else b.usable(NODE, strict) and b.acquire(NODE))
        breaker = b.breaker("node")
        results.append((picks, breaker.state, breaker._probe_at, dict(b._trial_at),
                        b.state("node")))
    assert results[0] == results[1]


@pytest.mark.parametrize("state", _states(), ids=lambda f: f.__name__)
def test_a_breakers_acquire_is_allows_then_the_half_open_claim(state):
    """Breaker.acquire (viewing its state once) answers as `allows` did, and claims the
    half-open probe exactly when it lets a request through in half-open."""
    from function_app.routing.breaker import HALF_OPEN

    clock = FakeClock()
    b = SharedBreakers(None, None, clock, CONFIG)
    state(b, clock)
    breaker, now = b.breaker("node"), clock.now()
    allowed, view, before = breaker.allows(now), breaker.view(now), breaker._probe_at
    assert breaker.acquire(now) == allowed
    assert breaker._probe_at == (now if allowed and view == HALF_OPEN else before)
    assert not (view == HALF_OPEN and breaker.allows(now))  # the probe is now out


async def test_a_refresh_due_to_read_probes_reads_both_kinds_in_one_call():
    store, clock = MemoryRoutingStore(), FakeClock()
    [writer, reader] = pair(store, clock)
    for _ in range(2):
        writer.record(NODE, False)
    await clock.advance(0)
    await store.record_probe(ProbeResult("node", False, clock.now(), 1.0, 503))
    await reader.refresh()  # probes due (never read): one call for both
    assert store.both_reads == 1 and reader.state("node") == OPEN
    assert reader.probes["node"].status == 503
    await clock.advance(0.5)
    await reader.refresh()  # breakers only
    assert store.both_reads == 1
    await clock.advance(1.5)
    await reader.refresh()  # PROBES_EVERY_S later: both again
    assert store.both_reads == 2 and reader.counters["refreshes"] == 3


async def test_probes_in_another_store_are_read_on_their_own():
    breakers, probes, clock = MemoryRoutingStore(), MemoryRoutingStore(), FakeClock()
    await probes.record_probe(ProbeResult("node", True, clock.now(), 1.0, 200))
    shared = SharedBreakers(breakers, probes, clock, CONFIG, cache_s=0.5)
    await shared.refresh()
    assert breakers.both_reads == probes.both_reads == 0
    assert shared.probes["node"].ok
