"""The id-only tracer's short paths (root, child, the attempt spans made straight from the
request span's ids) give the same span contexts as the OpenTelemetry constructors and the
tracer's own start_span, and the backend sees the request span's trace in its traceparent."""

from __future__ import annotations

import random

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from function_app.core.upstream import UpstreamRequest, UpstreamResponse
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest
from function_app.telemetry.ids import IdOnlyTracer
from function_app.telemetry.tracing import attempt_observer, start_request_span, traceparent

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _seeded(seed: int) -> IdOnlyTracer:
    tracer = IdOnlyTracer()
    tracer._bits = random.Random(seed).getrandbits
    return tracer


def test_root_and_child_contexts_are_what_the_constructor_makes():
    for seed in range(50):
        root = _seeded(seed).root().get_span_context()
        bits = random.Random(seed).getrandbits
        span_id = bits(64) or 1
        assert tuple(root) == tuple(SpanContext(bits(128) or 1, span_id, False, TraceFlags(0)))
        assert type(root) is SpanContext and root.is_valid and not root.is_remote
    state = TraceState([("vendor", "v1")])
    child = _seeded(7).child(0xABC, TraceFlags(1), state).get_span_context()
    assert tuple(child) == tuple(SpanContext(0xABC, random.Random(7).getrandbits(64) or 1,
                                             False, TraceFlags(1), state))


def test_start_span_gives_the_same_spans_as_root_and_child():
    assert tuple(_seeded(3).start_span("GET").get_span_context()) == \
        tuple(_seeded(3).root().get_span_context())
    parent = NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(1)))
    assert tuple(_seeded(3).start_span(
        "GET", context=trace.set_span_in_context(parent)).get_span_context()) == \
        tuple(_seeded(3).child(0xABC, TraceFlags(1), parent.get_span_context().trace_state)
              .get_span_context())


def _request(headers: list[tuple[str, str]]) -> GatewayRequest:
    return GatewayRequest(method="POST", path="/infer/node", query="", headers=Headers(headers),
                          body=b"", client_host="127.0.0.1")


async def _attempt_traceparent(tracer, request_span) -> tuple[str, list[tuple]]:
    done: list[tuple] = []
    observe = attempt_observer(tracer, request_span, lambda url: "node",
                               lambda *args: done.append(args[:2]))
    outgoing = UpstreamRequest("POST", "http://127.0.0.1:1/x", Headers(
        [("traceparent", CALLER), ("tracestate", "client=1")]), b"", 1.0, 1.0)

    async def send(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, Headers([("content-length", "0")]), _empty())

    await observe(outgoing, send)
    return outgoing.headers.get_all("traceparent"), done


async def _empty():
    return
    yield


async def test_the_backend_sees_the_callers_trace_through_the_request_span():
    tracer = IdOnlyTracer()
    span = start_request_span(tracer, _request([("traceparent", CALLER)]))
    trace_id, _, _, flags, _, _ = span.get_span_context()
    assert (trace_id, flags) == (0x0AF7651916CD43DD8448EB211C80319C, 1)
    sent, done = await _attempt_traceparent(tracer, span)
    sent_trace, sent_span, sent_flags = sent[0][3:35], sent[0][36:52], sent[0][53:]
    assert (sent_trace, sent_flags) == ("0af7651916cd43dd8448eb211c80319c", "01")
    assert sent_span != f"{span.get_span_context().span_id:016x}"  # the attempt's own span
    assert done == [("node", "2xx")]


async def test_without_a_caller_the_attempt_continues_the_request_spans_new_trace():
    tracer = IdOnlyTracer()
    span = start_request_span(tracer, _request([]))
    assert span.get_span_context().is_valid and not span.is_recording()
    sent, _ = await _attempt_traceparent(tracer, span)
    assert sent[0][:36] == traceparent(span)[:36] and sent[0].endswith("-00")


def test_the_spans_are_what_the_constructor_makes_of_their_context():
    from function_app.telemetry import ids

    assert ids._PLAIN_SPAN  # the pinned API: spans are made without its __init__
    tracer = _seeded(11)
    for span in (tracer.root(), tracer.child(0xABC, TraceFlags(1), TraceState([("v", "1")]))):
        made = NonRecordingSpan(span.get_span_context())
        assert type(span) is NonRecordingSpan and vars(span) == vars(made)
        assert not span.is_recording() and span.get_span_context() is made.get_span_context()
