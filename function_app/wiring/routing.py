"""Wiring of resilient routing: the routing store, shared breakers, budgets, stats, /healthz's
routing section and the health checks' body, for build.py."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

from ..adapters.entra_tokens import identity_tokens
from ..aoai.outbound import Outbound
from ..aoai.tokens import TokenProvider
from ..core.clock import SystemClock
from ..core.upstream import Upstream, UpstreamRequest
from ..http.headers import Headers
from ..routing.breakers import SharedBreakers
from ..routing.budget import RetryBudget
from ..routing.probes import plan_members, routing_report, routing_summary, run_health_checks
from ..routing.router import Router
from ..routing.routes import PROXY
from ..routing.store import BreakerStore, ProbeStore
from ..settings.specs import Settings
from .gateway import Parts

HealthChecks = Callable[[], Awaitable[dict[str, Any]]]  # the timer's body, bound to a gateway


def build_router(settings: Settings, parts: Parts, upstream: Upstream,
                 store: BreakerStore | None, tokens: TokenProvider | None = None
                 ) -> tuple[Router, HealthChecks | None]:
    """The attempt loop's shared parts (breakers shared through storage, budgets, stats) and the
    health-check timer's body (None without routing storage)."""
    if store is None and (settings.rate_limit_storage_connection
                          or settings.table_storage_endpoint):
        # Imported here: the Table SDK loads only when table storage is set (cold start).
        from ..adapters.breakerstore_table import open_routing_store

        store = open_routing_store(settings.rate_limit_storage_connection,
                                   settings.table_storage_endpoint, settings.routing_table,
                                   service=parts.table_service)
        if store is not None:
            parts.closers.append(store.close)
    clock = SystemClock()  # breaker rows compare wall-clock times across instances
    breakers = SharedBreakers(store, cast(ProbeStore, store), clock, settings.breaker,
                              cache_s=settings.breaker_cache_s,
                              storage_timeout_s=settings.rate_limit_storage_timeout_s)
    breakers.start()  # read the shared rows from now on, before any request needs them
    parts.closers.append(breakers.close)
    router = Router(upstream, breakers, settings.connect_timeout_s, settings.retry_max_attempts,
                    lambda: RetryBudget(settings.retry_budget_ratio,
                                        settings.retry_budget_min_per_s,
                                        settings.retry_budget_window_s),
                    outbound=Outbound(_tokens(settings, parts, tokens), settings.backend_specs))
    pools = {r.path: r.plan for r in settings.route_table.routes if r.kind == PROXY}
    models = settings.model_table
    pools.update({f"model:{name}": models.plan(name) for name in models.names()})
    parts.stats_sources["routing"] = lambda: {**router.stats.snapshot(),
                                              "breakers": breakers.snapshot()}
    parts.health_sections["routing"] = lambda: routing_report(pools, breakers, router.outstanding)
    parts.health_summaries["routing"] = lambda: routing_summary(pools, breakers)
    if store is None:
        return router, None
    return router, _health_checks(settings, upstream, cast(ProbeStore, store), clock,
                                  plan_members(pools.values()))


def _tokens(settings: Settings, parts: Parts, given: TokenProvider | None
            ) -> TokenProvider | None:
    """The managed identity's tokens, when a backend authenticates with Entra ID."""
    if given is not None or not any(s.auth == "entra" for s in settings.backend_specs.values()):
        return given
    tokens = identity_tokens(os.environ)  # azure-identity reads the same variables itself
    parts.closers.append(tokens.close)
    parts.stats_sources["backend_tokens"] = lambda: dict(tokens.counters)
    return tokens


def _health_checks(settings: Settings, upstream: Upstream, store: ProbeStore,
                   clock: SystemClock, members: dict[str, str]) -> HealthChecks:
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
