"""Wiring of resilient routing: the routing store, shared breakers, budgets, stats, /healthz's
routing section and the health checks' body, for bootstrap.py."""

from __future__ import annotations

import os
import socket
from typing import cast

from .adapters.breakerstore_table import open_routing_store
from .core.clock import SystemClock
from .core.routes import PROXY, RouteTable
from .core.settings import Settings, model_table
from .core.upstream import Upstream, UpstreamRequest
from .gateway import Gateway
from .http.headers import Headers
from .routing.breaker import BreakerConfig
from .routing.breakers import SharedBreakers
from .routing.budget import RetryBudget
from .routing.probes import plan_members, routing_report, run_health_checks
from .routing.store import BreakerStore, ProbeStore
from .stages.proxy import Router


def build_router(settings: Settings, gateway: Gateway, upstream: Upstream, table: RouteTable,
            store: BreakerStore | None) -> Router:
    """The attempt loop's shared parts: breakers (shared through storage), budgets, stats."""
    if store is None:
        store = open_routing_store(settings.rate_limit_storage_connection,
                                   settings.table_storage_endpoint, settings.routing_table)
        if store is not None:
            gateway.closers.append(store.close)
    clock = SystemClock()  # breaker rows compare wall-clock times across instances
    breakers = SharedBreakers(store, cast(ProbeStore, store), clock, BreakerConfig(
        settings.breaker_failures, settings.breaker_failure_rate, settings.breaker_window_s,
        settings.breaker_min_requests, settings.breaker_open_s),
        cache_s=settings.breaker_cache_s, storage_timeout_s=settings.rate_limit_storage_timeout_s)
    breakers.start()  # read the shared rows from now on, before any request needs them
    gateway.closers.append(breakers.close)
    router = Router(upstream, breakers, settings.connect_timeout_s, settings.retry_max_attempts,
                    lambda: RetryBudget(settings.retry_budget_ratio,
                                        settings.retry_budget_min_per_s,
                                        settings.retry_budget_window_s))
    pools = {r.path: r.plan for r in table.routes if r.kind == PROXY}
    models = model_table(settings)
    pools.update({f"model:{name}": models.plan(name) for name in models.names()})
    gateway.stats_sources["routing"] = lambda: {**router.stats.snapshot(),
                                                "breakers": breakers.snapshot()}
    gateway.health.sections["routing"] = lambda: routing_report(pools, breakers,
                                                                router.outstanding)
    if store is not None:
        gateway.health_checks = _health_checks(settings, upstream, cast(ProbeStore, store),
                                               clock, plan_members(pools.values()))
    return router


def _health_checks(settings: Settings, upstream: Upstream, store: ProbeStore,
                   clock: SystemClock, members: dict[str, str]):
    """The timer's body bound to this gateway: probe `members` over `upstream`."""
    holder = f"{socket.gethostname()}-{os.getpid()}"

    async def probe(url: str, timeout_s: float) -> int:
        answer = await upstream.send(UpstreamRequest(
            "GET", url, Headers([("accept", "application/json")]), b"", timeout_s, timeout_s))
        async for _ in answer.body:  # drain: the connection goes back to the pool
            pass
        return answer.status

    return lambda: run_health_checks(
        members, probe, store, clock, holder,
        timeout_s=settings.health_probe_timeout_s, lease_s=settings.health_check_lease_s)
