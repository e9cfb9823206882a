"""The assembled gateway: the composed pipeline, the health report, and what must be closed.

Wiring gathers the parts first (`Parts`), then builds the `Gateway` once from them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.pipeline import Handler
from ..http.messages import GatewayRequest, GatewayResponse
from ..settings.specs import Settings
from .health import HealthReport

Closer = Callable[[], Awaitable[Any]]
Source = Callable[[], dict[str, Any]]  # cheap, synchronous: a component's current figures


@dataclass
class Parts:
    """What wiring gathers from each component before the Gateway exists: its close (closed in
    reverse order of start), its counters for /_gateway/stats and its /healthz section."""

    closers: list[Closer] = field(default_factory=list)
    stats_sources: dict[str, Source] = field(default_factory=dict)
    health_sections: dict[str, Source] = field(default_factory=dict)
    # The anonymous /healthz view of a section that holds more than names and states.
    health_summaries: dict[str, Source] = field(default_factory=dict)
    authorize_operator: Callable[[GatewayRequest], Awaitable[None]] | None = None
    # The limiter's Table service client (limits.py), shared by the routing store (routing.py):
    # one connection pool per account, kept warm by the breakers' refresh.
    table_service: Any = None


@dataclass
class Gateway:
    settings: Settings
    handle: Handler
    health: HealthReport
    closers: list[Closer] = field(default_factory=list)
    stats_sources: dict[str, Source] = field(default_factory=dict)
    # The body of the health-check timer (routing/probes.py), bound to this gateway's backends.
    health_checks: Callable[[], Awaitable[dict[str, Any]]] | None = None
    telemetry: Any = None  # telemetry.observe.Telemetry when TELEMETRY_ENABLED (GET /metrics)
    # Raises 401/403 unless a request may read the operator endpoints (wiring/tenants.py).
    authorize_operator: Callable[[GatewayRequest], Awaitable[None]] | None = None

    def serve(self, request: GatewayRequest) -> Awaitable[GatewayResponse]:
        """The pipeline's awaitable for `request` (not a coroutine of its own: the pipeline's
        first stage is the one awaited, a frame fewer per request)."""
        return self.handle(request)

    def stats(self) -> dict[str, Any]:
        """This instance's counters, by component."""
        return {name: source() for name, source in self.stats_sources.items()}

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()
