"""`Telemetry.finish` writes the request-log line the RequestRecord path writes (every field, in
the record's order, for each kind of request) and counts the request under its status class;
the request span's shortcut for an empty current context gives what the API's look-up gives."""

from __future__ import annotations

import json
import logging
import random
from types import SimpleNamespace

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from prometheus_client import generate_latest

from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest
from function_app.mcp.stage import MCP_CALL, McpCall
from function_app.openai.bill import BILL
from function_app.openai.usage import Usage
from function_app.ratelimit.limits import REQUESTS_DECISION, Decision
from function_app.routing.routes import MATCH, Match, Route
from function_app.telemetry import observe, tracing
from function_app.telemetry.ids import IdOnlyTracer
from function_app.telemetry.labels import BoundedNames, ClientLabels
from function_app.telemetry.metrics import GatewayMetrics
from function_app.telemetry.request_log import RequestLog, RequestRecord
from function_app.telemetry.tracing import start_request_span, trace_ids

STARTED, ENDED = 100.0, 100.0123456789
ROUTE = Route("/infer/node", frozenset({"POST"}), "node", "/infer/node", 30.0, False)


def _telemetry(logger: logging.Logger) -> observe.Telemetry:
    return observe.Telemetry(tracer=IdOnlyTracer(), metrics=GatewayMetrics({}, "i"),
                             clients=ClientLabels("key", 200), models=BoundedNames(["gpt"]),
                             backend_urls={"http://127.0.0.1:4000": "node"},
                             log=RequestLog(logger))


def _request(facts: dict | None = None, **context) -> GatewayRequest:
    request = GatewayRequest(method="POST", path="/infer/node", query="", headers=Headers([]),
                             body=b"{}", client_host="127.0.0.1", request_id="r-42")
    ctx = request.context
    ctx.client_id = context.pop("client", "10.0.0.7")
    ctx.served_by = context.pop("served_by", "")
    ctx.cache_status = context.pop("cache", None)
    for fact, value in (facts or {}).items():
        fact.set(ctx, value)
    return request


def _bill(usage: Usage | None, model: str = "gpt"):
    return SimpleNamespace(model=model, usage=usage, spend=None, done=True, cost=0.0)


DENIED = Decision(allowed=False, scope="client", remaining=0)
# (request, status, first chunk, stream error, the RequestRecord's optional fields)
CASES = {
    "proxied": (lambda: _request({MATCH: Match(ROUTE, "/infer/node")}), 200, None, None, {}),
    "unmatched, no client": (lambda: _request(client=None), 404, None, None, {}),
    "limited": (lambda: _request({MATCH: Match(ROUTE, "/"), REQUESTS_DECISION: DENIED}),
                429, None, None, {"limited_by": "client"}),
    "overloaded": (lambda: _request({MATCH: Match(ROUTE, "/")}), 503, None, None,
                   {"limited_by": "overloaded"}),
    "cache hit": (lambda: _request(cache="hit"), 200, None, None, {"cache": "hit"}),
    "odd cache verdict": (lambda: _request(cache="weird"), 200, None, None,
                          {"cache": "_other"}),
    "streamed, cut": (lambda: _request({BILL: _bill(Usage(7, 0))},
                                       served_by="http://127.0.0.1:4000/v1"),
                      200, 100.004, "client_closed",
                      {"ttft_ms": 4.0, "tokens_in": 7, "tokens_out": 0,
                       "stream_error": "client_closed"}),
    "bill without usage": (lambda: _request({BILL: _bill(None, "other")}), 502, None,
                           "upstream_error", {"stream_error": "upstream_error"}),
    "mcp": (lambda: _request({MCP_CALL: McpCall("files", "tools/call", 't"ool' * 40)}),
            200, None, None, {"mcp_server": "files", "mcp_method": "tools/call",
                              "mcp_tool": ('t"ool' * 40)[:128], "mcp_outcome": "ok"}),
    "every optional field": (
        lambda: _request({MATCH: Match(ROUTE, "/"), REQUESTS_DECISION: DENIED,
                          BILL: _bill(Usage(3, 9)), MCP_CALL: McpCall("s", "m", "t", "x")},
                         cache="stale"),
        429, 100.001, "limited",
        {"tokens_in": 3, "tokens_out": 9, "limited_by": "client", "cache": "stale",
         "stream_error": "limited", "mcp_server": "s", "mcp_method": "m", "mcp_tool": "t",
         "mcp_outcome": "x"}),
    "mcp, no tool": (lambda: _request({MCP_CALL: McpCall("files")}), 200, None, None,
                     {"mcp_server": "files", "mcp_method": "-", "mcp_outcome": "ok"}),
    "served by a name": (lambda: _request({MATCH: Match(ROUTE, "/")}, served_by="node"), 200,
                         None, None, {}),
}


def _lines(logger: logging.Logger) -> list[str]:
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return seen


@pytest.mark.parametrize("case", CASES)
def test_the_line_is_the_request_records(case, monkeypatch):
    make, status, first, error, optional = CASES[case]
    monkeypatch.setattr(observe, "time", SimpleNamespace(perf_counter=lambda: ENDED))
    telemetry = _telemetry(logging.getLogger(f"test.finish.{case}"))
    seen = _lines(telemetry.log._log)
    request = make()
    span = telemetry.tracer.root()
    telemetry.finish(request, span, status, STARTED, first, error)
    match, bill = MATCH.get(request.context), BILL.get(request.context)
    client = request.context.client_id
    record = RequestRecord(
        request_id="r-42", trace_id=trace_ids(span)[0], method="POST",
        route=match.route.path if match else "unmatched",
        backend="node" if match or request.context.served_by else "-",
        model=telemetry.models(bill.model) if bill else "-", status=status,
        latency_ms=(ENDED - STARTED) * 1000, client=telemetry.clients.hashed(client),
        **{**optional, **({"ttft_ms": (first - STARTED) * 1000} if first else {})})
    reference = logging.getLogger(f"test.finish.reference.{case}")
    expected = _lines(reference)
    RequestLog(reference).write(record)
    assert [r.getMessage() for r in seen] == [r.getMessage() for r in expected]
    assert list(json.loads(seen[0].getMessage()))[:9] == list(RequestRecord.__annotations__)[:9]


def test_the_request_is_counted_under_its_status_class(monkeypatch):
    monkeypatch.setattr(observe, "time", SimpleNamespace(perf_counter=lambda: ENDED))
    telemetry = _telemetry(logging.getLogger("test.finish.metrics"))
    _lines(telemetry.log._log)
    for status in (200, 201, 404, 200):
        telemetry.finish(_request({MATCH: Match(ROUTE, "/")}), telemetry.tracer.root(),
                         status, STARTED, None, None)
    text = generate_latest(telemetry.metrics.registry).decode()
    assert 'gateway_requests_total{backend="node",route="/infer/node",status_class="2xx"} 3.0' \
        in text
    assert 'gateway_requests_total{backend="node",route="/infer/node",status_class="4xx"} 1.0' \
        in text
    assert 'gateway_request_duration_seconds_count{backend="node",route="/infer/node",' \
        'status_class="2xx"} 3.0' in text


def _seeded() -> IdOnlyTracer:
    tracer = IdOnlyTracer()
    tracer._bits = random.Random(3).getrandbits
    return tracer


def _span_of(tracer, headers=()) -> trace.Span:
    request = GatewayRequest(method="GET", path="/", query="", headers=Headers(list(headers)),
                             body=b"", client_host="127.0.0.1")
    return start_request_span(tracer, request)


def test_the_empty_context_shortcut_reads_the_apis_context():
    assert tracing._CURRENT is not None  # the default runtime context: the shortcut is taken
    assert tracing._CURRENT.get() is otel_context.get_current()
    token = otel_context.attach(baggage.set_baggage("k", "v"))
    try:  # a context without a span: a new trace, as before
        assert tracing._CURRENT.get() and not trace.get_current_span().get_span_context().is_valid
        assert _span_of(_seeded()).get_span_context() == _seeded().root().get_span_context()
    finally:
        otel_context.detach(token)


def test_a_current_span_is_the_parent_with_or_without_the_shortcut():
    host = NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(1)))
    token = otel_context.attach(trace.set_span_in_context(host))
    try:
        child = _span_of(_seeded(), [("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-00")])
    finally:
        otel_context.detach(token)
    trace_id, _, remote, flags, _, valid = child.get_span_context()
    assert (trace_id, remote, flags, valid) == (0xABC, False, TraceFlags(1), True)


@pytest.mark.parametrize("headers", [[], [("tracestate", "vendor=v1")],
                                     [("traceparent", "garbage")]])
def test_without_a_valid_caller_context_the_span_starts_a_trace(headers):
    expected = _seeded().start_span("GET", context=tracing.PROPAGATOR.extract(dict(headers)),
                                    kind=SpanKind.SERVER)
    assert _span_of(_seeded(), headers).get_span_context() == expected.get_span_context()


def test_a_caller_traceparent_is_continued():
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    span = _span_of(_seeded(), [("traceparent", caller), ("tracestate", "vendor=v1")])
    trace_id, _, _, flags, state, _ = span.get_span_context()
    assert (f"{trace_id:032x}", flags, state.to_header()) == (
        "0af7651916cd43dd8448eb211c80319c", TraceFlags(1), "vendor=v1")


@pytest.mark.parametrize("seed", range(20))
def test_the_traceparent_and_trace_id_are_the_propagators_text(seed):
    bits = random.Random(seed).getrandbits
    ids = [(bits(128) or 1, bits(64) or 1), (1, 1), (2**128 - 1, 2**64 - 1)]
    for trace_id, span_id in ids:
        for flags in (TraceFlags(0), TraceFlags(1), TraceFlags(0xFF)):
            span = NonRecordingSpan(SpanContext(trace_id, span_id, False, flags))
            carrier: dict[str, str] = {}
            tracing.PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
            assert tracing.traceparent(span) == carrier["traceparent"]
            assert tracing.trace_id(span) == f"{trace_id:032x}" == trace_ids(span)[0]
    assert tracing.trace_id(NonRecordingSpan(SpanContext(0, 0, False))) == ""


def _sdk_span():
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider().get_tracer("t").start_span("POST")


SPANS = {
    "the id-only tracer's": lambda: IdOnlyTracer().root(),
    "the API's constructor": lambda: NonRecordingSpan(SpanContext(0xABC, 0xDEF, False)),
    "an invalid context": lambda: NonRecordingSpan(SpanContext(0, 0, False)),
    "the SDK's": _sdk_span,
}


@pytest.mark.parametrize("kind", SPANS)
def test_the_lines_trace_id_is_the_spans_whatever_the_span(kind, monkeypatch):
    """finish reads the span context from the attribute of the spans the id-only tracer makes
    and through get_span_context for any other: the same trace id text either way."""
    monkeypatch.setattr(observe, "time", SimpleNamespace(perf_counter=lambda: ENDED))
    telemetry = _telemetry(logging.getLogger(f"test.finish.span.{kind}"))
    seen = _lines(telemetry.log._log)
    span = SPANS[kind]()
    telemetry.finish(_request({MATCH: Match(ROUTE, "/")}), span, 200, STARTED, None, None)
    assert json.loads(seen[0].getMessage())["trace_id"] == trace_ids(span)[0]
    assert (trace_ids(span)[0] == "") == (kind == "an invalid context")


@pytest.mark.parametrize("caller", [False, True])
async def test_through_the_stage_the_lines_trace_id_is_the_one_sent_upstream(caller):
    """The telemetry stage hands finish the trace id's text its short path formatted for the
    attempt's traceparent (one formatting for both); with a caller's trace (the general path)
    finish reads it from the span. Either way the line, the header and the span agree."""
    from function_app.core.upstream import UpstreamRequest, UpstreamResponse
    from function_app.http.messages import GatewayResponse
    from function_app.routing.attempts import ATTEMPT_OBSERVER
    from function_app.telemetry.stage import telemetry_stage

    telemetry = _telemetry(logging.getLogger(f"test.finish.stage.{caller}"))
    seen = _lines(telemetry.log._log)
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    request = GatewayRequest(
        method="POST", path="/infer/node", query="", body=b"{}", client_host="127.0.0.1",
        request_id="r-7", headers=Headers(
            [("traceparent", f"00-{caller_trace}-b7ad6b7169203331-01")] if caller else []))
    sent: list[Headers] = []

    async def send(outgoing: UpstreamRequest) -> UpstreamResponse:
        sent.append(outgoing.headers)
        return UpstreamResponse(200, Headers([("content-length", "2")]), b"{}")

    async def call_next(request: GatewayRequest) -> GatewayResponse:
        MATCH.set(request.context, Match(ROUTE, "/infer/node"))
        outgoing = UpstreamRequest("POST", "http://127.0.0.1:4000/infer/node",
                                   Headers([("tracestate", "client=1")]), b"{}", 5.0, 30.0)
        answer = await ATTEMPT_OBSERVER.need(request.context)(outgoing, send)
        return GatewayResponse(answer.status, answer.headers, b"{}")

    await telemetry_stage(telemetry)(request, call_next)
    (line,) = [json.loads(r.getMessage()) for r in seen]
    (headers,) = sent
    span_trace = trace_ids(request.context.request_span)[0]
    assert line["trace_id"] == headers.get("traceparent")[3:35] == span_trace
    assert (span_trace == caller_trace) == caller
    assert "tracestate" not in headers
