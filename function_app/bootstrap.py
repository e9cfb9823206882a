"""The one place where settings, adapters and stages are wired together.

The pipeline order is written here once, as data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from .adapters.httpx_upstream import HttpxUpstream, make_transport
from .core.pipeline import compose
from .core.routes import parse_routes
from .core.settings import Settings, load_settings
from .core.upstream import Upstream
from .gateway import Gateway
from .health import HealthReport
from .stages.body import body_stage
from .stages.errors import errors_stage
from .stages.proxy import proxy_handler
from .stages.request_id import request_id_stage
from .stages.routing import routing_stage

VERSION = "0.1.0"


def build_gateway(settings: Settings, upstream: Upstream | None = None) -> Gateway:
    """Wire a gateway from settings; `upstream` replaces the real HTTP client in tests."""
    table = parse_routes(settings.routes, settings.backends, settings.upstream_timeout_s)
    if upstream is None:
        upstream = HttpxUpstream(make_transport(settings.upstream_client,
                                                settings.upstream_max_connections))
    stages = [
        request_id_stage,
        errors_stage,
        routing_stage(table),
        body_stage(settings.max_body_bytes),
    ]
    terminal = proxy_handler(upstream, settings.backends, settings.connect_timeout_s)
    health = HealthReport(service=settings.service_name, version=VERSION,
                          backends=settings.backends, upstream=upstream,
                          probe_timeout_s=settings.health_probe_timeout_s,
                          cache_s=settings.health_cache_s)
    return Gateway(settings, compose(stages, terminal), health, closers=[upstream.aclose])


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
                    self._gateway = build_gateway(load_settings(self._environ()))
        return self._gateway

    def install(self, built: Gateway) -> None:
        """Use `built` instead of building one (tests wire gateways with fake adapters)."""
        self._gateway = built

    async def aclose(self) -> None:
        if self._gateway is not None:
            gateway, self._gateway = self._gateway, None
            await gateway.aclose()
