"""Active health checks: the body of the Functions timer, and the /healthz view of routing.

`run_health_checks` runs on every instance the timer fires on, but only the holder of the
"health" lease in storage probes, so the backends see one prober per app. Each backend's health
endpoint is probed concurrently and the result recorded in the ProbeStore, where every
instance's routing reads it (breakers.py) and skips a member whose last fresh probe failed.

Phase: the timer fires at the same wall-clock second in every process that runs it (a
schedule is a clock time, e.g. every 10 s at :00, :10 ...), so without a phase their lease
calls reach the routing table together. A process that does not hold the lease waits its own
phase, drawn once (uniform in [0, PHASE_MAX_S)), before its first storage call: the same offset
on every run. The holder does not wait: it renews on time, and it is the one process that
probes, so the run an otherwise idle instance is billed for is not made longer on every
period (in Azure the host runs a timer on one instance per app, which soon holds the lease).
The wait is part of the timer's run; PHASE_MAX_S keeps it short of any schedule's finest step
(a second). Tests pass `phase_s`, or a seeded `rng` to `process_phase`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from function_app.core.store_errors import StoreUnavailable

from ..core.clock import Clock
from .breakers import SharedBreakers
from .pools import Member, Plan
from .store import ProbeResult, ProbeStore

log = logging.getLogger(__name__)
LEASE = "health"
HEALTH_PATH = "/healthz"

PHASE_MAX_S = 0.5  # each process's phase is below this
_phase: list[float] = []  # this process's phase, once drawn
_holding: set[str] = set()  # holders whose last run here took the lease

# (url, timeout_s) -> HTTP status, or raises on no answer; bound to the upstream in wiring.
Probe = Callable[[str, float], Awaitable[int]]


def process_phase(rng: random.Random | None = None) -> float:
    """This process's phase in seconds, in [0, PHASE_MAX_S): drawn on the first call (from
    `rng`, else a generator seeded by the OS) and the same ever after."""
    if not _phase:
        _phase.append((rng or random.Random()).uniform(0.0, PHASE_MAX_S) % PHASE_MAX_S)
    return _phase[0]


async def run_health_checks(backends: Mapping[str, str], probe: Probe, store: ProbeStore,
                            clock: Clock, holder: str, *, timeout_s: float, lease_s: float,
                            phase_s: float | None = None) -> dict[str, Any]:
    """Probe every backend once if this instance holds the lease; what it did, as a dict.
    Unless `holder`'s last run here took the lease, first waits `phase_s` (this process's
    `process_phase()` when None)."""
    if holder not in _holding:
        phase = process_phase() if phase_s is None else phase_s
        if phase > 0:
            await clock.sleep(phase)
    try:
        took = await store.take_lease(LEASE, holder, lease_s, clock.now())
    except StoreUnavailable as exc:
        _holding.discard(holder)
        log.warning("health checks skipped, storage unavailable: %s", exc)
        return {"ran": False, "reason": "storage unavailable"}
    if not took:
        _holding.discard(holder)
        return {"ran": False, "reason": "another instance holds the lease"}
    _holding.add(holder)
    names = list(backends)
    results = await asyncio.gather(*(_probe_one(n, backends[n], probe, clock, timeout_s)
                                     for n in names))
    recorded = await _record(store, results)
    return {"ran": True, "recorded": recorded,
            "results": {r.backend: {"ok": r.ok, "status": r.status} for r in results}}


async def _record(store: ProbeStore, results: list[ProbeResult]) -> int:
    """Record every result; how many were. A store with `record_probes` (RoutingStore)
    writes them in one storage call, all or none; otherwise one call each."""
    many = getattr(store, "record_probes", None)
    if many is not None and len(results) > 1:
        try:
            await many(results)
            return len(results)
        except StoreUnavailable as exc:
            log.warning("could not record the probes of %s: %s",
                        ", ".join(r.backend for r in results), exc)
            return 0
    recorded = 0
    for result in results:
        try:
            await store.record_probe(result)
            recorded += 1
        except StoreUnavailable as exc:
            log.warning("could not record the probe of %s: %s", result.backend, exc)
    return recorded


async def _probe_one(name: str, base_url: str, probe: Probe, clock: Clock, timeout_s: float
                     ) -> ProbeResult:
    started = clock.now()
    status = 0
    try:
        async with asyncio.timeout(timeout_s):
            status = await probe(base_url + HEALTH_PATH, timeout_s)
    except Exception as exc:
        log.info("health probe of %s failed: %s", name, type(exc).__name__)
    latency = round((clock.now() - started) * 1000, 1)
    return ProbeResult(name, 200 <= status < 300, clock.now(), latency, status)


def plan_members(plans: Iterable[Plan]) -> dict[str, str]:
    """Every member of every plan: name -> base URL. Azure OpenAI resources have no health
    endpoint (their breakers judge them from real answers), so they are not probed."""
    return {m.name: m.url for plan in plans for target in plan.targets for m in target.members
            if m.backend is None or not m.backend.azure}


def routing_summary(pools: Mapping[str, Plan], breakers: SharedBreakers) -> dict[str, Any]:
    """For anonymous /healthz: each backend's name, breaker state and last probe's verdict; no
    route, pool or URL. A backend named by its URL (a MODEL_ROUTES URL) is counted, not named."""
    names = sorted({m.name for plan in pools.values() for t in plan.targets for m in t.members})

    def state(name: str) -> dict[str, Any]:
        probe = breakers.probes.get(name)
        return {"breaker": breakers.state(name), "probe_ok": None if probe is None else probe.ok}

    by_url = [state(n) for n in names if "://" in n]
    summary: dict[str, Any] = {"breaker_storage_healthy": breakers.storage_healthy,
                               "backends": {n: state(n) for n in names if "://" not in n}}
    if by_url:
        summary["url_backends"] = {"count": len(by_url), "breakers_not_closed": sum(
            s["breaker"] != "closed" for s in by_url)}
    return summary


def routing_report(pools: Mapping[str, Plan], breakers: SharedBreakers,
                   outstanding: Mapping[str, int]) -> dict[str, Any]:
    """For /healthz: each pool, its members, their breaker state and last probe."""

    def member(m: Member) -> dict[str, Any]:
        probe = breakers.probes.get(m.name)
        last = None if probe is None else {"ok": probe.ok, "at": probe.at,
                                           "latency_ms": probe.latency_ms}
        return {"backend": m.name, "weight": m.weight, "priority": m.priority,
                "breaker": breakers.state(m.name), "last_probe": last,
                "outstanding": outstanding.get(m.name, 0)}

    return {"breaker_storage_healthy": breakers.storage_healthy,
            "pools": {name: [{"target": t.label, "members": [member(m) for m in t.members]}
                             for t in plan.targets] for name, plan in pools.items()}}
