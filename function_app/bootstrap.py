"""The one place where settings, adapters and stages are wired together.

The pipeline order is written here once, as data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from .adapters.httpx_upstream import HttpxUpstream, make_transport
from .adapters.limitstore_memory import MemoryRateLimitStore
from .adapters.limitstore_table import open_limit_storage
from .adapters.otel_exporters import Exporters
from .cache.tier import CacheTier
from .cache_wiring import build_cache_stage
from .core.clock import Clock, SystemClock
from .core.identity import ClientIdentity
from .core.pipeline import Stage, compose
from .core.ratelimit.store import OverrideStore, RateLimitStore
from .core.routes import parse_routes
from .core.settings import Settings, load_settings, model_table
from .core.upstream import Upstream
from .gateway import Gateway
from .health import HealthReport
from .limiter.limiter import Limiter
from .limiter.overrides import OverrideSource
from .openai.bill import TokenLimits
from .openai.ledger import TokenLedger
from .openai.stage import openai_stage
from .router_wiring import build_router
from .routing.store import BreakerStore
from .stages.body import body_stage
from .stages.errors import errors_stage
from .stages.forwarded import forwarded_stage
from .stages.identity import identity_stage
from .stages.local import local_stage
from .stages.proxy import proxy_handler
from .stages.rate_limit import rate_limit_stage
from .stages.request_id import request_id_stage
from .stages.routing import routing_stage
from .telemetry.wiring import telemetry_stages
from .tenancy import Tenancy, open_tenancy
from .tenants.store import KeyStore

VERSION = "0.2.0"
HEALTH_CONNECTIONS = 16  # the probes' own pool (at least one connection per backend)
log = logging.getLogger(__name__)


def quiet_storage_sdk(level: str) -> None:
    """The Azure SDK logs every storage call at INFO (headers included); keep it at `level`."""
    logging.getLogger("azure").setLevel(level)


async def build_gateway(
    settings: Settings, *, upstream: Upstream | None = None, clock: Clock | None = None,
    limit_store: RateLimitStore | None = None, override_store: OverrideStore | None = None,
    routing_store: BreakerStore | None = None,
    cache_tier: CacheTier | None = None,
    exporters: Exporters | None = None,
    key_store: KeyStore | None = None,
) -> Gateway:
    """Wire a gateway from settings; the keyword arguments replace real adapters in tests."""
    table = parse_routes(settings.routes, settings.backends, settings.upstream_timeout_s)
    quiet_storage_sdk(settings.storage_sdk_log_level)
    probes = upstream
    if upstream is None:
        upstream = HttpxUpstream(make_transport(settings.upstream_client,
                                                settings.upstream_max_connections),
                                 settings.upstream_max_connections)
        # Health probes get connections of their own: a pool full of slow streams must not
        # make /healthz report healthy backends as down.
        size = max(HEALTH_CONNECTIONS, len(settings.backends))
        probes = HttpxUpstream(make_transport(settings.upstream_client, size), size)
    gateway = Gateway(settings, handle=None, health=HealthReport(  # type: ignore[arg-type]
        service=settings.service_name, version=VERSION, backends=settings.backends,
        upstream=probes, probe_timeout_s=settings.health_probe_timeout_s,
        cache_s=settings.health_cache_s), closers=[upstream.aclose])
    if probes is not upstream:
        gateway.closers.append(probes.aclose)
    identity = ClientIdentity(settings.client_id_source, settings.trusted_proxies,
                              settings.client_id_header)
    instance = f"{socket.gethostname()}-{os.getpid()}"
    observe = telemetry_stages(settings, gateway, instance, exporters)
    stages: list[Stage] = [request_id_stage, *observe, errors_stage,
                           forwarded_stage(settings.trusted_proxies), routing_stage(table)]
    clock = clock or SystemClock()
    # Gateway API keys (GATEWAY_AUTH): before rate limiting, so the key's tenant is the client.
    tenancy = open_tenancy(settings, clock, key_store)
    stages += tenancy.stages()
    # Named once, here, for everything after: limits, token limits, cache partitions, telemetry.
    stages.append(identity_stage(tenancy.identity(identity)))
    gateway.closers.append(tenancy.close)
    gateway.stats_sources["keys"] = tenancy.stats
    limiter = None
    if settings.rate_limit_enabled:
        limiter, overrides = _limiter(settings, gateway, clock, limit_store, override_store)
        stages.append(rate_limit_stage(limiter, tenancy.limits_for(overrides.limits_for)))
        # One read at start, so refused credentials or a missing table are logged at once.
        await limiter.probe()
    stages.append(body_stage(settings.max_body_bytes))
    stages.append(_openai(settings, gateway, limiter, clock, tenancy))
    # After rate limit (a hit is counted, limited and carries the headers) and after the OpenAI
    # stage (completions keyed on a checked body, tokens reserved); see stages/cache.py.
    if settings.cache_enabled:
        stages.append(build_cache_stage(settings, gateway, clock, cache_tier))
    stages.append(local_stage)
    router = build_router(settings, gateway, upstream, table, routing_store)
    gateway.handle = compose(stages, proxy_handler(router))
    return gateway


def _limiter(settings: Settings, gateway: Gateway, clock: Clock,
             limit_store: RateLimitStore | None, override_store: OverrideStore | None
             ) -> tuple[Limiter, OverrideSource]:
    """The one limiter of the process (requests and tokens) and the source of its limits."""
    if limit_store is None:
        storage = open_limit_storage(
            settings.rate_limit_storage_connection, settings.table_storage_endpoint,
            buckets_table=settings.rate_limit_table,
            overrides_table=settings.limit_overrides_table)
        if storage is None:
            log.warning("no limiter storage configured: limits hold for this instance only")
            limit_store = MemoryRateLimitStore()
        else:
            limit_store, override_store = storage.buckets, storage.overrides
            gateway.closers.append(storage.close)
    limiter = Limiter(limit_store, clock, settings, f"{socket.gethostname()}-{os.getpid()}")
    overrides = OverrideSource(override_store, clock, settings)
    gateway.closers += [overrides.close, limiter.close]  # closed in reverse: tokens go back first
    gateway.stats_sources["limiter"] = lambda: {**limiter.counters,
                                                "storage_healthy": limiter.storage_healthy}
    gateway.stats_sources["overrides"] = lambda: dict(overrides.counters)
    gateway.health.sections["limiter"] = lambda: _limiter_health(limiter)
    return limiter, overrides


def _limiter_health(limiter: Limiter) -> dict:
    """/healthz: the limiter's storage state; refused storage (a misconfiguration) is not ok."""
    state = limiter.storage_state
    return {"ok": state["state"] != "refused", "storage": state}


def _openai(settings: Settings, gateway: Gateway, limiter: Limiter | None, clock: Clock,
            tenancy: Tenancy) -> Stage:
    ledger = TokenLedger()
    gateway.stats_sources["tokens"] = ledger.snapshot
    limits = TokenLimits.per_minute(settings.client_tpm, settings.model_tpm)
    return openai_stage(tenancy.models(model_table(settings)), tenancy.token_limits(limits),
                        tenancy.limiter(limiter), ledger, settings.default_max_tokens, clock)


class LazyGateway:
    """Builds the gateway on first use, from an environment read at that moment (never at import,
    so a bad setting cannot break function indexing), and keeps it for the process's life."""

    def __init__(self, environ: Callable[[], Mapping[str, str]]):
        self._environ = environ
        self._gateway: Gateway | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Gateway:
        if self._gateway is None:
            async with self._lock:
                if self._gateway is None:
                    self._gateway = await build_gateway(load_settings(self._environ()))
        return self._gateway

    def install(self, built: Gateway | None) -> None:
        """Use `built` instead of building one (tests wire gateways with fake adapters)."""
        self._gateway = built

    async def aclose(self) -> None:
        if self._gateway is not None:
            gateway, self._gateway = self._gateway, None
            await gateway.aclose()
