"""Build the telemetry of one gateway from settings (build.py calls `build_telemetry`)."""

from __future__ import annotations

from ..adapters.otel_exporters import ExportConfig, Exporters, open_exporters
from ..settings.specs import Settings
from ..telemetry.labels import BoundedNames, ClientLabels
from ..telemetry.metrics import GatewayMetrics
from ..telemetry.observe import Telemetry, backend_urls
from ..telemetry.otel_metrics import OtelInstruments
from ..telemetry.request_log import RequestLog
from .gateway import Parts


def build_telemetry(settings: Settings, parts: Parts, instance: str,
                    exporters: Exporters | None = None) -> Telemetry | None:
    """The telemetry (its stage's state and GET /metrics), None when TELEMETRY_ENABLED is false.
    Metrics read `parts.stats_sources` live. `exporters` replaces the configured ones (tests:
    in-memory exporters)."""
    if not settings.telemetry_enabled:
        return None
    exporters = exporters or open_exporters(export_config(settings), instance)
    parts.closers.extend(exporters.closers)
    models = settings.model_table
    extra = [(b.base_url, b.name) for b in models.models.values()]
    if models.default is not None:
        extra.append((models.default.base_url, models.default.name))
    return Telemetry(
        tracer=exporters.tracer,
        metrics=GatewayMetrics(parts.stats_sources, instance),
        clients=ClientLabels(settings.telemetry_client_hash_key,
                             settings.telemetry_client_labels),
        models=BoundedNames(models.names()),
        backend_urls=backend_urls(settings.backends, extra),
        log=RequestLog() if settings.telemetry_request_log else None,
        otel=OtelInstruments(exporters.meter) if exporters.meter is not None else None)


def export_config(settings: Settings) -> ExportConfig:
    """Where traces and metrics go, from the settings of the same names."""
    return ExportConfig(settings.service_name, settings.telemetry_trace_sample_ratio,
                        settings.appinsights_connection_string,
                        settings.appinsights_authentication_string, settings.otlp_endpoint)
