"""Wiring of the guardrails (GUARDRAILS, CONTENT_SAFETY_*): the Content Safety client behind its
cache and rate limit, the stage, its counters (/_gateway/stats, /metrics) and /healthz section.

No policy: no stage, no client, nothing on /healthz: the gateway is what it was without them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..core.clock import Clock
from ..core.pipeline import Stage
from ..guardrails.safety import ContentSafety
from ..settings.specs import Settings
from .gateway import Parts

if TYPE_CHECKING:  # loaded by build_guardrails when GUARDRAILS is set (not on a cold start without)
    from ..guardrails.guarded import GuardedSafety
    from ..guardrails.stage import Guardrails

SAFETY_CONNECTIONS = 64  # to Content Safety; the same transport as the upstream (UPSTREAM_CLIENT)


def build_guardrails(settings: Settings, parts: Parts, clock: Clock, tracer: Any = None,
                     given: ContentSafety | None = None) -> Stage | None:
    """The stage, or None when GUARDRAILS is empty; `given` replaces the HTTP client (tests)."""
    if not settings.guardrails:
        return None
    # Imported here: without guardrails the build loads neither the Content Safety client nor
    # the stage and its policies (the PII patterns compile when they load).
    from ..adapters.contentsafety_httpx import open_content_safety
    from ..adapters.httpx_upstream import make_transport
    from ..guardrails.guarded import GuardedSafety
    from ..guardrails.stage import Guardrails, guardrails_stage

    inner = given or open_content_safety(
        settings.content_safety_endpoint, settings.content_safety_auth,
        settings.content_safety_key, settings.content_safety_timeout_s,
        make_transport(settings.upstream_client, SAFETY_CONNECTIONS), _tokens(settings))
    safety = GuardedSafety(inner, clock, rps=settings.content_safety_rps) \
        if inner is not None else None
    if safety is not None:
        parts.closers.append(safety.aclose)
    guard = Guardrails(settings.guardrails, safety, tracer=tracer)
    parts.stats_sources["guardrails"] = lambda: _stats(guard, safety)
    parts.health_sections["guardrails"] = lambda: guardrails_health(settings, safety)
    parts.health_summaries["guardrails"] = lambda: guardrails_summary(
        guardrails_health(settings, safety))
    return guardrails_stage(guard)


def _tokens(settings: Settings) -> Any:
    """The managed identity's tokens (the one cache over azure-identity), for auth "entra"."""
    if not settings.content_safety_endpoint or settings.content_safety_auth != "entra":
        return None
    from ..adapters.entra_tokens import identity_tokens

    return identity_tokens(os.environ)  # azure-identity reads the same variables itself


def _stats(guard: Guardrails, safety: GuardedSafety | None) -> dict[str, Any]:
    service = dict(safety.counters) if safety is not None else {}
    return {**guard.counts.snapshot(), "service": service}


def guardrails_health(settings: Settings, safety: GuardedSafety | None) -> dict[str, Any]:
    """/healthz: the service's last known state and each policy's fail mode. Not ok when the
    service is unavailable or refuses the gateway and a policy using it fails closed (its
    requests are being refused); a fail-open policy is then `degraded`, its text unchecked."""
    using = [p for p in settings.guardrails if p.uses_service]
    if safety is not None and using:
        safety.probe_if_stale()  # the report says what the service did last; keep it fresh
    state = safety.state if safety is not None else {"state": "not_configured", "detail": "",
                                                     "since": 0.0}
    down = state["state"] in ("unavailable", "refused", "not_configured") and bool(using)
    closed = any(not p.fails_open for p in using)
    return {"ok": not (down and closed), "degraded": down and not closed,
            "service": {**state, "auth": settings.content_safety_auth},
            "fail": {p.name: p.fail for p in settings.guardrails},
            "policies": len(settings.guardrails)}


def guardrails_summary(health: dict[str, Any]) -> dict[str, Any]:
    """The anonymous /healthz view: states and how many policies fail each way, without policy
    names or the failure's detail (those are on /_gateway/health)."""
    modes: dict[str, int] = {}
    for mode in health["fail"].values():
        modes[mode] = modes.get(mode, 0) + 1
    return {"ok": health["ok"], "degraded": health["degraded"],
            "service": {"state": health["service"]["state"]}, "fail": modes}
