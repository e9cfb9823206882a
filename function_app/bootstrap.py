"""The one place where settings, adapters and stages are wired together.

The pipeline order is written here once, as data.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from function_app.ratelimit.engine import LimiterEngine
from function_app.ratelimit.modes import make_limiter
from function_app.ratelimit.overrides import OverrideSource
from function_app.ratelimit.stage import rate_limit_stage
from function_app.ratelimit.store import OverrideStore, RateLimitStore
from function_app.ratelimit.tokens import TokenLimits

from .adapters.limitstore_memory import MemoryRateLimitStore
from .adapters.otel_exporters import Exporters
from .adapters.upstreams import open_upstream
from .anthropic.stage import anthropic_stage
from .aoai.inbound import azure_paths_stage, deployment_model_stage
from .aoai.tokens import TokenProvider
from .cache.tier import CacheTier
from .cache_wiring import build_cache_stage
from .core.clock import Clock, SystemClock
from .core.identity import ClientIdentity
from .core.pipeline import Stage, compose
from .core.upstream import Upstream
from .gateway import Gateway, Parts
from .guardrails.safety import ContentSafety
from .guardrails_wiring import build_guardrails
from .health import HealthReport
from .lazy_gateway import LazyGateway  # noqa: F401  (its home before; tests import it here)
from .mcp_wiring import build_mcp_stage
from .openai.ledger import TokenLedger
from .openai.stage import openai_stage
from .router_wiring import build_router
from .routing.store import BreakerStore
from .settings.specs import Settings
from .stages.body import body_stage
from .stages.errors import errors_stage
from .stages.forwarded import forwarded_stage
from .stages.identity import identity_stage
from .stages.local import local_stage
from .stages.request_id import request_id_stage
from .stages.routing import routing_stage
from .stages.upstream import upstream_step
from .telemetry.observe import Telemetry
from .telemetry.stage import telemetry_stage
from .telemetry.wiring import build_telemetry
from .tenancy import Tenancy, open_tenancy
from .tenants.store import KeyStore

VERSION = "0.2.0"
HEALTH_CONNECTIONS = 16  # the probes' own pool (at least one connection per backend)
log = logging.getLogger(__name__)


def quiet_storage_sdk(level: str) -> None:
    """The Azure SDK logs every storage call at INFO (headers included); keep it at `level`."""
    logging.getLogger("azure").setLevel(level)


@dataclass(frozen=True)
class Given:
    """Adapters a caller supplies in place of the real ones (tests); None: built from settings."""

    instance: str  # this process's name in storage rows (leases, sweeps)
    clock: Clock
    upstream: Upstream | None = None
    limit_store: RateLimitStore | None = None
    override_store: OverrideStore | None = None
    routing_store: BreakerStore | None = None
    cache_tier: CacheTier | None = None
    exporters: Exporters | None = None
    key_store: KeyStore | None = None
    tokens: TokenProvider | None = None  # Entra tokens for backends (aoai/tokens.py)
    content_safety: ContentSafety | None = None


async def build_gateway(
    settings: Settings, *, upstream: Upstream | None = None, clock: Clock | None = None,
    limit_store: RateLimitStore | None = None, override_store: OverrideStore | None = None,
    routing_store: BreakerStore | None = None,
    cache_tier: CacheTier | None = None,
    exporters: Exporters | None = None,
    key_store: KeyStore | None = None,
    tokens: TokenProvider | None = None,
    content_safety: ContentSafety | None = None,
) -> Gateway:
    """Wire a gateway from settings in one pass, the parts first and then the Gateway; the
    keyword arguments replace real adapters in tests."""
    quiet_storage_sdk(settings.storage_sdk_log_level)
    given = Given(f"{socket.gethostname()}-{os.getpid()}", clock or SystemClock(), upstream,
                  limit_store, override_store, routing_store, cache_tier, exporters, key_store,
                  tokens, content_safety)
    parts = Parts()
    upstream, probes = _upstreams(settings, given.upstream, parts)
    telemetry = build_telemetry(settings, parts, given.instance, given.exporters)
    stages = await _stages(settings, parts, given, telemetry, upstream)
    router, health_checks = build_router(settings, parts, upstream, given.routing_store,
                                         given.tokens)
    return Gateway(settings, compose(stages, upstream_step(router)),
                   _health(settings, probes, parts, given.clock), closers=parts.closers,
                   stats_sources=parts.stats_sources, health_checks=health_checks,
                   telemetry=telemetry, authorize_operator=parts.authorize_operator)


async def _stages(settings: Settings, parts: Parts, given: Given,
                  telemetry: Telemetry | None, upstream: Upstream) -> list[Stage]:
    """The pipeline, in order: written once, here."""
    tenancy = open_tenancy(settings, given.clock, given.key_store)
    parts.closers.append(tenancy.close)
    parts.stats_sources["keys"] = tenancy.stats
    parts.authorize_operator = tenancy.authorize_operator
    identity = tenancy.identity(ClientIdentity(
        settings.client_id_source, settings.trusted_proxies, settings.client_id_header))
    stages: list[Stage] = [request_id_stage]
    if telemetry is not None:
        stages.append(telemetry_stage(telemetry))
    stages += [errors_stage, forwarded_stage(settings.trusted_proxies),
               azure_paths_stage,  # Azure-style client paths become their OpenAI twins
               routing_stage(settings.route_table)]
    # Gateway API keys (GATEWAY_AUTH): before rate limiting, so the key's tenant is the client.
    stages += tenancy.stages()
    # Named once, here, for everything after: limits, token limits, cache partitions, telemetry.
    stages.append(identity_stage(identity))
    limiter = None
    if settings.rate_limit_enabled:
        limiter, overrides = await _limiter(settings, parts, given)
        stages.append(rate_limit_stage(limiter, tenancy.limits_for(overrides.limits_for)))
    # MCP routes read their own body (JSON-RPC errors) and answer without the later stages.
    stages.append(build_mcp_stage(settings, parts, given.clock, upstream, limiter))
    stages.append(body_stage(settings.max_body_bytes))
    stages.append(deployment_model_stage)
    # Guardrails: after the body (they read it), before the model stages, so a blocked request
    # reserves no tokens and reaches no backend; output checks wrap the answer they return.
    guard = build_guardrails(settings, parts, given.clock,
                             telemetry.tracer if telemetry is not None else None,
                             given.content_safety)
    if guard is not None:
        stages.append(guard)
    stages += _openai(settings, parts, limiter, given.clock, tenancy)
    # After rate limit (a hit is counted, limited and carries the headers) and after the OpenAI
    # stage (completions keyed on a checked body, tokens reserved); see stages/cache.py.
    if settings.cache_enabled:
        stages.append(build_cache_stage(settings, parts, given.clock, given.cache_tier))
    stages.append(local_stage)
    return stages


def _upstreams(settings: Settings, given: Upstream | None, parts: Parts
               ) -> tuple[Upstream, Upstream]:
    """The upstream of requests and that of the /healthz probes (the same one when given)."""
    if given is not None:
        parts.closers.append(given.aclose)
        return given, given
    upstream = open_upstream(settings.upstream_client, settings.upstream_max_connections)
    # Health probes get connections of their own: a pool full of slow streams must not make
    # /healthz report healthy backends as down.
    size = max(HEALTH_CONNECTIONS, len(settings.backends))
    probes = open_upstream(settings.upstream_client, size)
    parts.closers += [upstream.aclose, probes.aclose]
    return upstream, probes


def _health(settings: Settings, probes: Upstream, parts: Parts, clock: Clock) -> HealthReport:
    # Azure OpenAI resources have no health endpoint: their breakers judge them (routing section).
    probed = {name: url for name, url in settings.backends.items()
              if not getattr(settings.backend_specs.get(name), "azure", False)}
    report = HealthReport(
        service=settings.service_name, version=VERSION, backends=probed,
        upstream=probes, probe_timeout_s=settings.health_probe_timeout_s,
        cache_s=settings.health_cache_s, clock=clock)
    report.sections.update(parts.health_sections)
    report.summaries.update(parts.health_summaries)
    return report


async def _limiter(settings: Settings, parts: Parts, given: Given
                   ) -> tuple[LimiterEngine, OverrideSource]:
    """The one limiter of the process (requests and tokens) and the source of its limits."""
    limit_store, override_store = given.limit_store, given.override_store
    if limit_store is None:
        storage = None
        if settings.rate_limit_storage_connection or settings.table_storage_endpoint:
            # Imported here: the Table SDK loads only when table storage is set (cold start).
            from .adapters.limitstore_table import open_limit_storage

            storage = open_limit_storage(
                settings.rate_limit_storage_connection, settings.table_storage_endpoint,
                buckets_table=settings.rate_limit_table,
                overrides_table=settings.limit_overrides_table)
        if storage is None:
            log.warning("no limiter storage configured: limits hold for this instance only")
            limit_store = MemoryRateLimitStore()
        else:
            limit_store, override_store = storage.buckets, storage.overrides
            parts.closers.append(storage.close)
    limiter = make_limiter(limit_store, given.clock, settings.limiter, given.instance)
    overrides = OverrideSource(override_store, given.clock, settings.limit_defaults,
                               settings.limiter.overrides_refresh_s)
    parts.closers += [overrides.close, limiter.close]  # closed in reverse: tokens go back first
    parts.stats_sources["limiter"] = lambda: {**limiter.counters,
                                              "storage_healthy": limiter.storage_healthy}
    parts.stats_sources["overrides"] = lambda: dict(overrides.counters)
    parts.health_sections["limiter"] = lambda: _limiter_health(limiter)
    # One read at start, so refused credentials or a missing table are logged at once.
    await limiter.probe()
    return limiter, overrides


def _limiter_health(limiter: LimiterEngine) -> dict:
    """/healthz: the limiter's storage state; refused storage (a misconfiguration) is not ok."""
    state = limiter.storage_state
    return {"ok": state["state"] != "refused", "storage": state}


def _openai(settings: Settings, parts: Parts, limiter: LimiterEngine | None, clock: Clock,
            tenancy: Tenancy) -> list[Stage]:
    """The OpenAI and Anthropic stages: one model table, token limits, limiter and ledger."""
    ledger = TokenLedger()
    parts.stats_sources["tokens"] = ledger.snapshot
    limits = tenancy.token_limits(TokenLimits.per_minute(settings.client_tpm,
                                                         settings.model_tpm))
    models, limiter = tenancy.models(settings.model_table), tenancy.limiter(limiter)
    spender = tenancy.spender()
    return [openai_stage(models, limits, limiter, ledger, settings.default_max_tokens, clock,
                         settings.responses_id_secret.encode(), spender,
                         settings.sse_max_event_bytes),
            anthropic_stage(models, limits, limiter, ledger, clock, spender,
                            settings.sse_max_event_bytes)]

