"""Where traces and OpenTelemetry metrics go: Azure Monitor, an OTLP collector, or nowhere.

- APPLICATIONINSIGHTS_CONNECTION_STRING set (Azure): the azure-monitor-opentelemetry distro, with
  the managed identity named in APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Entra ID; the
  component refuses keys). Its automatic instrumentations stay off (the gateway makes its own
  request and upstream spans; FastAPI or httpx spans would count them twice) and so does its log
  export: the Functions host already forwards the app's logs to Application Insights.
- OTEL_EXPORTER_OTLP_ENDPOINT set: OTLP/HTTP (protobuf) to `<endpoint>/v1/traces` and
  `/v1/metrics`, batched.
- neither: spans still get ids (for the request log and the backends' `traceparent`) but
  nothing is recorded (telemetry/ids.py), which costs next to nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import Meter
from opentelemetry.trace import Tracer

from ..core.redact import display_url
from ..telemetry.ids import IdOnlyTracer

if TYPE_CHECKING:  # the SDK loads only when an exporter is configured (cold start, #26)
    from opentelemetry.sdk.resources import Resource

log = logging.getLogger(__name__)
SCOPE = "ai-gateway"
AUTO_INSTRUMENTATIONS = ("azure_sdk", "django", "fastapi", "flask", "httpx", "httpx2",
                         "psycopg2", "requests", "urllib", "urllib3")


@dataclass(frozen=True)
class ExportConfig:
    """Where telemetry goes: the settings of the same names (wiring/telemetry.py fills it)."""

    service_name: str
    sample_ratio: float  # TELEMETRY_TRACE_SAMPLE_RATIO
    appinsights_connection_string: str = field(repr=False)
    appinsights_authentication_string: str
    otlp_endpoint: str  # OTEL_EXPORTER_OTLP_ENDPOINT


@dataclass
class Exporters:
    tracer: Tracer
    meter: Meter | None  # None: no OpenTelemetry metrics exporter
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)


def open_exporters(config: ExportConfig, instance: str) -> Exporters:
    """The configured exporters; with none configured the OpenTelemetry SDK is not imported."""
    if config.appinsights_connection_string:
        return _azure_monitor(config, _resource(config, instance))
    if config.otlp_endpoint:
        return _otlp(config, _resource(config, instance))
    return Exporters(IdOnlyTracer(), None)


def _resource(config: ExportConfig, instance: str) -> Resource:
    from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource

    return Resource.create({SERVICE_NAME: config.service_name, SERVICE_INSTANCE_ID: instance})


def _sampler(ratio: float):
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    return ParentBased(TraceIdRatioBased(ratio))


def _otlp(config: ExportConfig, resource: Resource) -> Exporters:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = config.otlp_endpoint.rstrip("/")
    tracer_provider = TracerProvider(resource=resource,
                                     sampler=_sampler(config.sample_ratio))
    tracer_provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{base}/v1/traces"), schedule_delay_millis=1000))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
                                           export_interval_millis=15000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    async def close() -> None:
        # Flushes what is batched; the exporters' own timeouts bound the wait.
        tracer_provider.shutdown()
        meter_provider.shutdown()

    log.info("telemetry: OTLP export to %s", display_url(base))
    return Exporters(tracer_provider.get_tracer(SCOPE), meter_provider.get_meter(SCOPE), [close])


def _azure_monitor(config: ExportConfig, resource: Resource) -> Exporters:
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=config.appinsights_connection_string,
        credential=_credential(config.appinsights_authentication_string),
        resource=resource, sampling_ratio=config.sample_ratio,
        disable_logging=True,
        instrumentation_options={name: {"enabled": False} for name in AUTO_INSTRUMENTATIONS})
    log.info("telemetry: Azure Monitor export")
    # The distro installs process-wide providers; the gateway takes its tracer and meter there.
    return Exporters(trace.get_tracer(SCOPE), metrics.get_meter(SCOPE))


def _credential(authentication: str):
    """A ManagedIdentityCredential from `Authorization=AAD;ClientId=<id>`, else None."""
    parts = dict(p.split("=", 1) for p in authentication.split(";") if "=" in p)
    parts = {k.strip().lower(): v.strip() for k, v in parts.items()}
    if parts.get("authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("clientid") or None)
