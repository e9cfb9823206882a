"""The /healthz report: the gateway's own state plus a concurrent probe of every backend.

Probe results are reused for `cache_s`, and concurrent callers share one probe in flight, so a storm
of health checks reaches each backend at most once per `cache_s`.

Two views (docs/SECURITY.md): the anonymous one (GET /healthz) names each backend and its state
and nothing else: no URL, no route table, no pool. The operator view (GET /_gateway/health)
adds each backend's URL in its shown form (core/redact.py: never a `user:password@`) and every
section whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from ..core.clock import Clock, SystemClock
from ..core.errors import GatewayError
from ..core.redact import display_url
from ..core.upstream import Upstream, UpstreamRequest
from ..http.headers import Headers
from ..settings.specs import Settings

Section = Callable[[], dict[str, Any]]  # a part's state, cheap and synchronous


class HealthReport:
    """Uptime, probe latency and the reuse period are measured on `clock` (the system clock
    unless one is given)."""

    def __init__(self, *, service: str, version: str, backends: Mapping[str, str],
                 upstream: Upstream, probe_timeout_s: float, cache_s: float,
                 clock: Clock | None = None):
        self._static = {"service": service, "version": version}
        self._backends = dict(backends)
        self._upstream = upstream
        self._timeout_s = probe_timeout_s
        self._cache_s = cache_s
        self._clock = clock or SystemClock()
        self._started = self._clock.now()
        self._probe: asyncio.Task | None = None
        self._probed_at = float("-inf")
        # Named parts of the gateway reporting their own state (e.g. "limiter"); a part that
        # says {"ok": False} makes the whole report not ok. Callables, cheap and synchronous.
        self.sections: dict[str, Section] = {}
        # The anonymous view of a section that holds more than names and states (routing's
        # pools); a section without one is shown whole to anyone. Each keeps the section's "ok".
        self.summaries: dict[str, Section] = {}

    async def report(self, detail: bool = False) -> dict[str, Any]:
        """The anonymous view, or with `detail` the operator's."""
        now = self._clock.now()
        if self._probe is None or (self._probe.done() and now - self._probed_at >= self._cache_s):
            self._probed_at = now
            self._probe = asyncio.ensure_future(self._probe_all())
        backends = await asyncio.shield(self._probe)
        if not detail:
            backends = {name: {k: v for k, v in found.items() if k != "url"}
                        for name, found in backends.items()}
        uptime_ms = int((self._clock.now() - self._started) * 1000)
        views = self.sections if detail else {**self.sections, **self.summaries}
        parts = {name: views[name]() for name in self.sections}
        ok = all(part.get("ok", True) is not False for part in parts.values())
        return {"ok": ok, **self._static, "uptime_ms": uptime_ms, "backends": backends, **parts}

    async def _probe_all(self) -> dict[str, dict[str, Any]]:
        names = list(self._backends)
        results = await asyncio.gather(*(self._probe_one(self._backends[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _probe_one(self, base_url: str) -> dict[str, Any]:
        started = self._clock.now()
        ok = False
        try:
            answer = await self._upstream.send(UpstreamRequest(
                "GET", f"{base_url}/healthz", Headers([("accept", "application/json")]), b"",
                self._timeout_s, self._timeout_s))
            async for _ in answer.body:  # drain so the connection returns to the pool
                pass
            ok = 200 <= answer.status < 300
        except GatewayError:
            ok = False
        latency_ms = round((self._clock.now() - started) * 1000, 1)
        return {"url": display_url(base_url), "ok": ok, "latency_ms": latency_ms}


def build_health(settings: Settings, probes: Upstream, clock: Clock, version: str,
                 sections: Mapping[str, Section], summaries: Mapping[str, Section]
                 ) -> HealthReport:
    """/healthz over `probes` (the probes' own upstream), with each part's section and the
    anonymous summaries of those that have one (wiring's Parts)."""
    # Azure OpenAI resources have no health endpoint: their breakers judge them (routing section).
    probed = {name: url for name, url in settings.backends.items()
              if not getattr(settings.backend_specs.get(name), "azure", False)}
    report = HealthReport(
        service=settings.service_name, version=version, backends=probed,
        upstream=probes, probe_timeout_s=settings.health_probe_timeout_s,
        cache_s=settings.health_cache_s, clock=clock)
    report.sections.update(sections)
    report.summaries.update(summaries)
    return report
