"""Sampling decided before a span is built (adapters/otel_exporters.py, PresampledTracer): it
decides as the SDK provider's sampler would (OTLP: ParentBased(TraceIdRatioBased); Azure
Monitor: ApplicationInsightsSampler), a dropped span is the id-only tracer's and never the SDK's,
a kept root carries the trace id the decision was made on."""

from __future__ import annotations

import random

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from function_app.adapters import otel_exporters as ox


def test_the_appinsights_score_is_the_exporters_own():
    from azure.monitor.opentelemetry.exporter.export.trace._utils import _get_DJB2_sample_score
    from opentelemetry.trace import format_trace_id

    rng = random.Random(26)
    ids = [rng.getrandbits(128) or 1 for _ in range(20000)]
    ids += [1, (1 << 128) - 1, 0xABCDEF, 1 << 127]
    for trace_id in ids:
        assert ox.appinsights_score(trace_id) == _get_DJB2_sample_score(
            format_trace_id(trace_id).lower()), hex(trace_id)


class CountingTracer(trace.Tracer):
    """The SDK tracer, counting the spans asked of it."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def start_span(self, *args, **kwargs):
        self.calls += 1
        return self.inner.start_span(*args, **kwargs)

    def start_as_current_span(self, *args, **kwargs):  # pragma: no cover
        raise NotImplementedError


def pair(path: str, ratio: float):
    """(presampled tracer, its counting SDK tracer, the finished spans) and a reference SDK
    tracer with the same sampler, for one exporter path."""
    from azure.monitor.opentelemetry.exporter import ApplicationInsightsSampler

    def sampler():
        return ox._sampler(ratio) if path == "otlp" else ApplicationInsightsSampler(ratio)

    ids = ox._NextTraceId()
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler(), id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    sdk = CountingTracer(provider.get_tracer("t"))
    rule = ox.ratio_rule(ratio) if path == "otlp" else ox.appinsights_rule(ratio)
    tracer = ox.PresampledTracer(sdk, ids, rule, follow_parent=path == "otlp")
    reference_ids = ox._NextTraceId()
    reference = TracerProvider(sampler=sampler(), id_generator=reference_ids).get_tracer("r")
    return tracer, sdk, spans, reference, reference_ids


def parent(trace_id: int, sampled: bool, remote: bool = True):
    state = TraceState([("vendor", "v")])
    return trace.set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id, 0x1234, remote, TraceFlags(1 if sampled else 0), state)))


@pytest.mark.parametrize("path", ["otlp", "appinsights"])
def test_decisions_match_the_sdk_sampler_and_the_sdk_builds_only_the_kept_spans(path):
    tracer, sdk, spans, reference, reference_ids = pair(path, 0.1)
    rng = random.Random(12)
    kept = 0
    for _ in range(600):
        trace_id = rng.getrandbits(128) or 1
        for sampled in (True, False):
            ctx = parent(trace_id, sampled)
            ours = tracer.start_span("POST", context=ctx, kind=SpanKind.CLIENT)
            theirs = reference.start_span("POST", context=ctx, kind=SpanKind.CLIENT)
            a, b = ours.get_span_context(), theirs.get_span_context()
            assert ours.is_recording() == theirs.is_recording()
            assert (a.trace_id, a.trace_flags, a.trace_state, a.is_remote) == (
                b.trace_id, b.trace_flags, b.trace_state, b.is_remote)
            assert a.is_valid and a.span_id not in (0, 0x1234)
            kept += ours.is_recording()
            ours.end()
        # A root: the reference SDK decides on the trace id the presampler drew.
        root = tracer.start_span("GET", kind=SpanKind.SERVER)
        reference_ids.next = root.get_span_context().trace_id
        theirs = reference.start_span("GET", kind=SpanKind.SERVER)
        assert root.is_recording() == theirs.is_recording()
        a, b = root.get_span_context(), theirs.get_span_context()
        assert (a.trace_id, a.trace_flags, a.trace_state) == (
            b.trace_id, b.trace_flags, b.trace_state)
        assert a.trace_flags & 1 == root.is_recording()
        kept += root.is_recording()
        root.end()
    assert 0 < kept < 3 * 600  # both ways taken
    assert sdk.calls == kept == len(spans.get_finished_spans())


def test_a_kept_root_is_the_sdks_span_on_the_decided_trace_id_with_the_sample_rate():
    tracer, _, spans, _, _ = pair("appinsights", 1.0)
    root = tracer.start_span("GET", kind=SpanKind.SERVER)
    child = tracer.start_span("POST", context=trace.set_span_in_context(root),
                              kind=SpanKind.CLIENT)
    child.end()
    root.end()
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert finished["POST"].context.trace_id == finished["GET"].context.trace_id
    assert finished["POST"].parent.span_id == finished["GET"].context.span_id
    assert finished["GET"].parent is None and finished["GET"].kind == SpanKind.SERVER
    assert finished["GET"].attributes["_MS.sampleRate"] == 100.0  # the exporter's itemCount


def test_ratio_zero_builds_no_sdk_span_and_keeps_ids_for_logs_and_backends():
    for path in ("otlp", "appinsights"):
        tracer, sdk, _, _, _ = pair(path, 0.0)
        root = tracer.start_span("GET")
        child = tracer.start_span("POST", context=trace.set_span_in_context(root))
        assert not root.is_recording() and root.get_span_context().is_valid
        assert child.get_span_context().trace_id == root.get_span_context().trace_id
        # Azure Monitor's sampler ignores a caller's sampled flag (the trace id decides).
        followed = tracer.start_span("POST", context=parent(0xABC, sampled=True))
        assert followed.is_recording() == (path == "otlp")
        assert sdk.calls == (1 if path == "otlp" else 0)


def test_the_exporters_leave_the_process_wide_providers_alone(tmp_path, monkeypatch):
    """A process-wide provider switches on FastAPI's own telemetry (a span tree, metrics and
    logs per request) and the distro's log export: the gateway's stay its own."""
    from tests.support.appinsights_receiver import LOCAL_ONLY_ENV, connection_string

    for key, value in LOCAL_ONLY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    before = (type(trace.get_tracer_provider()), )
    exporters = ox.open_exporters(ox.ExportConfig(
        "gw", 0.5, connection_string("http://127.0.0.1:9"), "", ""), "instance")
    try:
        assert isinstance(exporters.tracer, ox.PresampledTracer)
        assert exporters.meter is not None and exporters.closers
        assert (type(trace.get_tracer_provider()), ) == before
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        from opentelemetry import _logs, metrics
        assert type(metrics.get_meter_provider()).__name__.startswith("_Proxy")
        assert type(_logs.get_logger_provider()).__name__.startswith("ProxyLogger")
    finally:
        import asyncio
        for close in exporters.closers:
            asyncio.run(close())
