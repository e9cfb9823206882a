"""Build the telemetry of one gateway from settings (bootstrap calls `telemetry_stages`)."""

from __future__ import annotations

from typing import Any

from ..adapters.otel_exporters import Exporters, open_exporters
from ..core.pipeline import Stage
from ..settings import Settings
from .labels import BoundedNames, ClientLabels
from .metrics import GatewayMetrics
from .observe import Telemetry, backend_urls
from .otel_metrics import OtelInstruments
from .request_log import RequestLog
from .stage import telemetry_stage


def telemetry_stages(settings: Settings, gateway: Any, instance: str,
                     exporters: Exporters | None = None) -> list[Stage]:
    """[the telemetry stage], or [] when TELEMETRY_ENABLED is false; `gateway.telemetry` is set
    for GET /metrics. `exporters` replaces the configured ones (tests: in-memory exporters)."""
    if not settings.telemetry_enabled:
        return []
    exporters = exporters or open_exporters(settings, instance)
    gateway.closers.extend(exporters.closers)
    models = settings.model_table
    extra = [(b.base_url, b.name) for b in models.models.values()]
    if models.default is not None:
        extra.append((models.default.base_url, models.default.name))
    telemetry = Telemetry(
        tracer=exporters.tracer,
        metrics=GatewayMetrics(gateway.stats_sources, instance),
        clients=ClientLabels(settings.telemetry_client_hash_key,
                             settings.telemetry_client_labels),
        models=BoundedNames(models.names()),
        backend_urls=backend_urls(settings.backends, extra),
        log=RequestLog() if settings.telemetry_request_log else None,
        otel=OtelInstruments(exporters.meter) if exporters.meter is not None else None)
    gateway.telemetry = telemetry
    return [telemetry_stage(telemetry)]
