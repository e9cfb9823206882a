"""The gateway build: the upstream clients, each concept's wiring (its module beside this one),
and the pipeline order, written here once, as data.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from functools import partial

from function_app.ratelimit.stage import rate_limit_stage
from function_app.ratelimit.store import OverrideStore, RateLimitStore

from ..adapters.otel_exporters import Exporters
from ..adapters.upstreams import OpenedOnFirstUse, open_upstream
from ..aoai.inbound import azure_paths_stage, deployment_model_stage
from ..aoai.tokens import TokenProvider
from ..cache.tier import CacheTier
from ..core.clock import Clock, SystemClock
from ..core.identity import ClientIdentity
from ..core.pipeline import ForKinds, Stage, compose
from ..core.upstream import Upstream
from ..guardrails.safety import ContentSafety
from ..routing.routes import ANTHROPIC_KINDS, LOCAL_OK, MCP, OPENAI_KINDS
from ..routing.stage import routing_stage
from ..routing.store import BreakerStore
from ..routing.upstream import upstream_step
from ..settings.specs import Settings
from ..stages.body import body_stage
from ..stages.cache import CACHED_KINDS
from ..stages.errors import errors_stage
from ..stages.forwarded import forwarded_stage
from ..stages.identity import identity_stage
from ..stages.local import local_stage
from ..stages.request_id import request_id_stage
from ..telemetry.observe import Telemetry
from ..telemetry.stage import telemetry_stage
from ..tenants.store import KeyStore
from .cache import build_cache_stage
from .gateway import Gateway, Parts
from .guardrails import build_guardrails
from .health import build_health
from .limits import build_limiter
from .mcp import build_mcp_stage
from .models import model_stages
from .routing import build_router
from .telemetry import build_telemetry
from .tenants import open_tenancy

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
                   build_health(settings, probes, given.clock, VERSION,
                                parts.health_sections, parts.health_summaries),
                   closers=parts.closers,
                   stats_sources=parts.stats_sources, health_checks=health_checks,
                   telemetry=telemetry, authorize_operator=parts.authorize_operator)


async def _stages(settings: Settings, parts: Parts, given: Given,
                  telemetry: Telemetry | None, upstream: Upstream) -> list[Stage]:
    """The pipeline, in order: written once, here."""
    tenancy = open_tenancy(settings, given.clock, given.key_store)
    parts.closers.append(tenancy.close)
    parts.stats_sources["keys"] = tenancy.stats
    parts.authorize_operator = tenancy.authorize_operator
    proxies = settings.trusted_proxies
    identity = tenancy.identity(ClientIdentity(settings.client_id_source, proxies,
                                               settings.client_id_header))
    stages: list[Stage] = [request_id_stage]
    if telemetry is not None:
        stages.append(telemetry_stage(telemetry))
    stages += [errors_stage, forwarded_stage(proxies),
               azure_paths_stage,  # Azure-style client paths become their OpenAI twins
               routing_stage(settings.route_table)]
    # Gateway API keys (GATEWAY_AUTH): before rate limiting, so the key's tenant is the client.
    stages += tenancy.stages()
    # Named once, here, for everything after: limits, token limits, cache partitions, telemetry.
    stages.append(identity_stage(identity))
    limiter = None
    if settings.rate_limit_enabled:
        limiter, overrides = await build_limiter(settings, parts, given.clock, given.instance,
                                                 given.limit_store, given.override_store)
        stages.append(rate_limit_stage(limiter, tenancy.limits_for(overrides.limits_for)))
    # MCP routes read their own body (JSON-RPC errors) and answer without the later stages.
    stages.append(ForKinds(frozenset({MCP}),
                           build_mcp_stage(settings, parts, given.clock, upstream, limiter)))
    stages.append(body_stage(settings.max_body_bytes))
    stages.append(deployment_model_stage)
    # Guardrails: after the body (they read it), before the model stages, so a blocked request
    # reserves no tokens and reaches no backend; output checks wrap the answer they return.
    guard = build_guardrails(settings, parts, given.clock,
                             telemetry.tracer if telemetry is not None else None,
                             given.content_safety)
    if guard is not None:
        stages.append(guard)
    openai, anthropic = model_stages(settings, parts, limiter, given.clock, tenancy)
    stages += [ForKinds(OPENAI_KINDS, openai), ForKinds(ANTHROPIC_KINDS, anthropic)]
    # After rate limit (a hit is counted, limited and carries the headers) and after the OpenAI
    # stage (completions keyed on a checked body, tokens reserved); see stages/cache.py.
    if settings.cache_enabled:
        stages.append(ForKinds(CACHED_KINDS, build_cache_stage(settings, parts, given.clock,
                                                               given.cache_tier)))
    # Stages in ForKinds act on those route kinds only: a request of another kind skips them.
    stages.append(ForKinds(frozenset({LOCAL_OK}), local_stage))
    return stages


def _upstreams(settings: Settings, given: Upstream | None, parts: Parts
               ) -> tuple[Upstream, Upstream]:
    """The upstream of requests and that of the /healthz probes (the same one when given)."""
    if given is not None:
        parts.closers.append(given.aclose)
        return given, given
    upstream = open_upstream(settings.upstream_client, settings.upstream_max_connections)
    # Health probes get connections of their own: a pool full of slow streams must not make
    # /healthz report healthy backends as down. Opened at the first probe, not at the build.
    size = max(HEALTH_CONNECTIONS, len(settings.backends))
    probes = OpenedOnFirstUse(partial(open_upstream, settings.upstream_client, size))
    parts.closers += [upstream.aclose, probes.aclose]
    return upstream, probes
