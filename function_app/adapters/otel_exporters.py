"""Where traces and OpenTelemetry metrics go: Azure Monitor, an OTLP collector, or nowhere.

- APPLICATIONINSIGHTS_CONNECTION_STRING set (Azure): the Azure Monitor exporters
  (azure-monitor-opentelemetry-exporter) on providers of the gateway's own, with the managed
  identity named in APPLICATIONINSIGHTS_AUTHENTICATION_STRING (Entra ID; the component refuses
  keys). Exported: the gateway's spans at TELEMETRY_TRACE_SAMPLE_RATIO (its request span a
  `requests` item, or a `dependencies` InProc item under a caller's span; an upstream attempt a
  `dependencies` HTTP item; span events `traces` items, with the sample rate for itemCount),
  and the GenAI histograms (`customMetrics`). Not the distro's `configure_azure_monitor`: in
  the version pinned it exports every log record (its `disable_logging` argument is
  overwritten by its environment default), adds Live Metrics and performance counters, and
  sets process-wide providers, which switch on FastAPI's own telemetry (a span tree, metrics
  and logs per request). Logs reach Application Insights through the Functions host; Live
  Metrics comes from the host too. docs/perf/pass12-export.md has the before and after.
- OTEL_EXPORTER_OTLP_ENDPOINT set: OTLP/HTTP (protobuf) to `<endpoint>/v1/traces` and
  `/v1/metrics`, batched.
- neither: spans still get ids (for the request log and the backends' `traceparent`) but
  nothing is recorded (telemetry/ids.py), which costs next to nothing.

With an exporter, sampling is decided before a span is built (`PresampledTracer`): a span the
SDK's sampler would drop is the id-only tracer's (real ids, nothing recorded), at its cost;
only a sampled span is the SDK's. Batched export runs on the SDK's thread, off the request.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.trace import SpanKind, TraceFlags, Tracer
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from ..core.redact import display_url
from ..telemetry.ids import IdOnlyTracer

if TYPE_CHECKING:  # the SDK loads only when an exporter is configured (cold start, #26)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)
SCOPE = "ai-gateway"
METRICS_INTERVAL_MS = 60000  # Azure Monitor's: the distro's default (OTEL_METRIC_EXPORT_INTERVAL)
# The SDK's flags for what it drops: not sampled, and W3C's random-trace-id bit on a root (its
# id generator is random) or as the parent has it.
_RANDOM = TraceFlags.RANDOM_TRACE_ID
_RANDOM_ROOT = TraceFlags(_RANDOM)
_DROPPED = {flags: TraceFlags(flags & _RANDOM) for flags in range(256)}
_LOW64 = (1 << 64) - 1


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


class _NextTraceId:
    """The SDK provider's id generator: random ids, except the trace id of a root span the
    presampler has just kept, which the SDK span must carry (its sampler decides on it too)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self._random = RandomIdGenerator()
        self.generate_span_id = self._random.generate_span_id
        self.next = 0

    def generate_trace_id(self) -> int:
        trace_id, self.next = self.next, 0
        return trace_id or self._random.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return True


class PresampledTracer(Tracer):
    """The SDK tracer behind a sampling decision made first, by the same rule as the SDK
    provider's sampler, so a span the sampler would drop is never built by the SDK.

    `keep(trace_id)` is the sampler's rule for a trace id; with `follow_parent` (the OTLP
    path's ParentBased sampler) a valid parent's sampled flag decides instead. A dropped span is
    what the SDK makes then: a non-recording span with the parent's trace id and trace state
    (a new trace id for a root), a new span id, the SDK's flags (not sampled; the random-id
    bit). A kept one is the SDK tracer's (a root with the trace id the decision was made on),
    whose sampler decides the same and adds what it adds (Azure Monitor's sample rate)."""

    def __init__(self, sdk: Tracer, ids: _NextTraceId, keep: Callable[[int], bool],
                 follow_parent: bool) -> None:
        self._sdk = sdk
        self._next = ids
        self._keep = keep
        self._follow = follow_parent
        self._ids = IdOnlyTracer()
        self._bits = random.Random(os.urandom(32)).getrandbits  # as IdOnlyTracer's

    def start_span(self, name, context=None, kind=SpanKind.INTERNAL, attributes=None,
                   links=None, start_time=None, record_exception=True,
                   set_status_on_exception=True) -> trace.Span:
        trace_id, _, _, flags, state, valid = trace.get_current_span(context).get_span_context()
        if valid:
            if not (flags & 1 if self._follow else self._keep(trace_id)):
                return self._ids.child(trace_id, _DROPPED[flags], state)
        else:
            trace_id = self._bits(128) or 1
            if not self._keep(trace_id):
                return self._ids.child(trace_id, _RANDOM_ROOT, DEFAULT_TRACE_STATE)
            self._next.next = trace_id
        return self._sdk.start_span(name, context, kind, attributes, links, start_time,
                                    record_exception, set_status_on_exception)

    def start_as_current_span(self, *args, **kwargs):  # pragma: no cover - not used here
        raise NotImplementedError("the gateway hands spans on explicitly")


def ratio_rule(ratio: float) -> Callable[[int], bool]:
    """TraceIdRatioBased's rule: the trace id's low 64 bits under the ratio's bound."""
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    bound = TraceIdRatioBased(ratio).bound
    return lambda trace_id: (trace_id & _LOW64) < bound


# Application Insights' sampling score (the same in every Application Insights SDK, so services
# sample an operation alike): the 32-bit DJB2 hash of the trace id's 32 lower-case hex digits,
# seed 5381, signed, its absolute value over INT32_MAX. h = h * 33 + c per digit, mod 2**32,
# is the seed times 33**32 plus each digit times its power of 33: one weighted sum.
_INT32_MAX = 2**31 - 1
_DJB2_POWERS = tuple(pow(33, 31 - i, 2**32) for i in range(32))
_DJB2_SEED = 5381 * pow(33, 32, 2**32)


def appinsights_score(trace_id: int) -> float:
    """The exporter's `_get_DJB2_sample_score(format_trace_id(trace_id))`, in a few calls."""
    h = (_DJB2_SEED + sum(map(int.__mul__, b"%032x" % trace_id, _DJB2_POWERS))) & 0xFFFFFFFF
    if h == 0x80000000:  # INT32_MIN: the exporter takes INT32_MAX
        return 1.0
    return (h if h < 0x80000000 else 0x100000000 - h) / _INT32_MAX


def appinsights_rule(ratio: float) -> Callable[[int], bool]:
    """ApplicationInsightsSampler's rule: every trace at 1, none at 0, else score < ratio."""
    if ratio >= 1.0:
        return lambda trace_id: True
    if ratio <= 0.0:
        return lambda trace_id: False
    last = (0, False)  # a request's spans share a trace id: its score is taken once

    def keep(trace_id: int) -> bool:
        nonlocal last
        if last[0] != trace_id:
            last = (trace_id, appinsights_score(trace_id) < ratio)
        return last[1]

    return keep


def _presampled(provider: TracerProvider, ids: _NextTraceId, keep: Callable[[int], bool],
                follow_parent: bool) -> PresampledTracer:
    return PresampledTracer(provider.get_tracer(SCOPE), ids, keep, follow_parent)


def _otlp(config: ExportConfig, resource: Resource) -> Exporters:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = config.otlp_endpoint.rstrip("/")
    ids = _NextTraceId()
    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(config.sample_ratio),
                                     id_generator=ids)
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
    tracer = _presampled(tracer_provider, ids, ratio_rule(config.sample_ratio), True)
    return Exporters(tracer, meter_provider.get_meter(SCOPE), [close])


def _azure_monitor(config: ExportConfig, resource: Resource) -> Exporters:
    from azure.monitor.opentelemetry.exporter import (
        ApplicationInsightsSampler,
        AzureMonitorMetricExporter,
        AzureMonitorTraceExporter,
    )
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = _app_service(resource)
    connection = {"connection_string": config.appinsights_connection_string,
                  "credential": _credential(config.appinsights_authentication_string)}
    ids = _NextTraceId()
    # Providers of the gateway's own, not the process-wide ones: those would switch on FastAPI's
    # own telemetry (a span tree, a duration histogram and logs per request) and anything else
    # that looks for a configured provider.
    tracer_provider = TracerProvider(
        resource=resource, sampler=ApplicationInsightsSampler(config.sample_ratio),
        id_generator=ids)
    # The exporter reads the provider's resource (its `_OTELRESOURCE_` item) from this one.
    tracer_provider.add_span_processor(BatchSpanProcessor(
        AzureMonitorTraceExporter(tracer_provider=tracer_provider, **connection)))
    reader = PeriodicExportingMetricReader(AzureMonitorMetricExporter(**connection),
                                           export_interval_millis=METRICS_INTERVAL_MS)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    async def close() -> None:
        # Flushes what is batched; the exporters' own timeouts bound the wait.
        tracer_provider.shutdown()
        meter_provider.shutdown()

    log.info("telemetry: Azure Monitor export")
    tracer = _presampled(tracer_provider, ids, appinsights_rule(config.sample_ratio), False)
    return Exporters(tracer, meter_provider.get_meter(SCOPE), [close])


def _app_service(resource: Resource) -> Resource:
    """`resource` over what the App Service detector reads from the environment (site, region,
    slot: the attributes the distro's default detectors gave, less the VM detector, which asks
    the instance metadata endpoint at start)."""
    try:
        from opentelemetry.resource.detector.azure.app_service import (
            AzureAppServiceResourceDetector,
        )
    except ImportError:  # pragma: no cover - comes with the exporter's distro
        return resource
    return AzureAppServiceResourceDetector().detect().merge(resource)


def _credential(authentication: str):
    """A ManagedIdentityCredential from `Authorization=AAD;ClientId=<id>`, else None."""
    parts = dict(p.split("=", 1) for p in authentication.split(";") if "=" in p)
    parts = {k.strip().lower(): v.strip() for k, v in parts.items()}
    if parts.get("authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("clientid") or None)
