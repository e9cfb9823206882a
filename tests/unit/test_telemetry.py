"""Traces, metrics and request logs through the registered handlers, with in-memory exporters."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from function_app import app as app_module
from function_app.adapters.httpx_upstream import HttpxUpstream
from function_app.adapters.otel_exporters import Exporters
from function_app.app import dashboard, metrics, proxy
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway
from tests.support.handler_calls import make_request, read_body

from .test_openai_handlers import USAGE, answer, chat

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
SECRET = "sk-very-secret-value"


@pytest.fixture
def spans():
    return InMemorySpanExporter()


@pytest.fixture
def reader():
    return InMemoryMetricReader()


@pytest.fixture
async def wired(backend, spans, reader):
    """Install a gateway whose traces and OpenTelemetry metrics go to in-memory exporters."""

    async def _wire(**environ: str):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        meter = MeterProvider(metric_readers=[reader]).get_meter("test")
        settings = load_settings({"TELEMETRY_CLIENT_HASH_KEY": "k", **environ})
        upstream = HttpxUpstream(httpx.MockTransport(backend))
        built = await build_gateway(settings, upstream=upstream,
                                    exporters=Exporters(provider.get_tracer("t"), meter))
        app_module.gateway.install(built)
        return built

    yield _wire
    await app_module.gateway.aclose()


async def scrape() -> str:
    response = await metrics(make_request("GET", "/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return (await read_body(response)).decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            have = line[len(name):].rsplit(" ", 1)
            if all(f'{k}="{v}"' in have[0] for k, v in labels.items()):
                return float(have[1])
    return None


async def test_request_span_continues_caller_and_backend_gets_the_attempt_span(
        wired, backend, spans):
    await wired()
    response = await proxy(make_request("POST", "/infer/python", b"{}",
                                        {"traceparent": CALLER, "content-type": "text/plain"}))
    await read_body(response)
    server, = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    client, = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert f"{server.context.trace_id:032x}" == CALLER_TRACE
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert client.parent.span_id == server.context.span_id
    sent = backend.seen[0].headers.get_list("traceparent")
    assert sent == [f"00-{CALLER_TRACE}-{client.context.span_id:016x}-01"]
    assert server.name == "POST /infer/python"
    assert server.attributes["http.route"] == "/infer/python"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["gateway.ratelimit.allowed"] is True
    assert client.attributes["gateway.backend"] == "python"
    assert client.attributes["http.response.status_code"] == 200


async def test_under_the_worker_the_host_span_is_the_parent_and_ours_is_internal(
        wired, spans):
    await wired()
    host = TracerProvider().get_tracer("host").start_span("host invocation")
    token = otel_context.attach(trace.set_span_in_context(host))
    try:
        await read_body(await proxy(make_request("POST", "/infer/python", b"{}")))
    finally:
        otel_context.detach(token)
    ours = [s for s in spans.get_finished_spans() if s.kind != SpanKind.CLIENT]
    assert [s.kind for s in ours] == [SpanKind.INTERNAL]  # the host already counts the request
    assert ours[0].parent.span_id == host.get_span_context().span_id


async def test_openai_answer_carries_genai_attributes_and_token_metrics(
        wired, backend, spans, reader):
    await wired()
    backend.respond = answer
    response = await proxy(make_request("POST", "/v1/chat/completions", chat(),
                                        {"content-type": "application/json"}))
    assert json.loads(await read_body(response))["usage"] == USAGE
    span, = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert span.attributes["gen_ai.request.model"] == "sim-python"
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.usage.input_tokens"] == 7
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    text = await scrape()
    assert sample(text, "gateway_tokens_total", gen_ai_request_model="sim-python",
                  gen_ai_token_type="input") == 7
    assert sample(text, "gen_ai_client_token_usage_count", gen_ai_token_type="output") == 1
    assert sample(text, "gateway_requests_total", route="/v1/chat/completions",
                  backend="python", status_class="2xx") == 1
    names = {m.name for rm in reader.get_metrics_data().resource_metrics
             for sm in rm.scope_metrics for m in sm.metrics}
    assert "gen_ai.client.token.usage" in names


async def test_stream_records_time_to_first_token_when_the_stream_ends(wired, backend):
    await wired()
    backend.respond = answer
    response = await proxy(make_request("POST", "/v1/chat/completions", chat(stream=True),
                                        {"content-type": "application/json"}))
    assert sample(await scrape(), "gen_ai_server_time_to_first_token_seconds_count") is None
    await read_body(response)
    text = await scrape()
    assert sample(text, "gen_ai_server_time_to_first_token_seconds_count",
                  gen_ai_request_model="sim-python") == 1
    assert sample(text, "gen_ai_server_time_per_output_token_seconds_count") == 1


async def test_429_is_counted_by_scope_and_marked_on_the_span(wired, spans):
    await wired(CLIENT_RPS="1", CLIENT_BURST="1")
    statuses = []
    for _ in range(3):
        response = await proxy(make_request("POST", "/infer/python", b"{}"))
        await read_body(response)
        statuses.append(response.status_code)
    assert statuses.count(429) == 2
    assert sample(await scrape(), "gateway_rejections_total", status="429", scope="client") == 2
    limited = [s for s in spans.get_finished_spans()
               if s.attributes.get("http.response.status_code") == 429]
    assert len(limited) == 2
    assert limited[0].events[0].name == "gateway.rate_limited"
    assert limited[0].attributes["gateway.ratelimit.scope"] == "client"


async def test_request_log_is_one_json_line_without_secrets_or_content(wired, backend, caplog):
    await wired()
    backend.respond = answer
    prompt = "my private prompt"
    body = json.dumps({"model": "sim-python",
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        response = await proxy(make_request(
            "POST", "/v1/chat/completions", body,
            {"content-type": "application/json", "authorization": f"Bearer {SECRET}",
             "x-api-key": SECRET, "x-request-id": "req-1"}))
        await read_body(response)
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.requests"]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["request_id"] == "req-1" and len(entry["trace_id"]) == 32
    assert (entry["route"], entry["backend"], entry["status"]) == (
        "/v1/chat/completions", "python", 200)
    assert (entry["tokens_in"], entry["tokens_out"]) == (7, 3)
    assert entry["client"] not in ("198.51.100.4", "-") and len(entry["client"]) == 16
    for forbidden in (SECRET, prompt, "198.51.100.4", "choices"):
        assert forbidden not in lines[0]


async def test_client_labels_are_capped_in_metrics(wired, backend):
    await wired(TELEMETRY_CLIENT_LABELS="2", CLIENT_ID_SOURCE="api-key")
    backend.respond = answer
    for n in range(4):
        response = await proxy(make_request("POST", "/v1/chat/completions", chat(),
                                            {"content-type": "application/json",
                                             "x-api-key": f"client-key-{n}"}))
        await read_body(response)
    text = await scrape()
    clients = {line.split('client="')[1].split('"')[0] for line in text.splitlines()
               if line.startswith("gateway_tokens_total{") and 'gen_ai_token_type="input"' in line}
    assert len(clients) == 3 and "_other" in clients
    assert sample(text, "gateway_tokens_total", client="_other", gen_ai_token_type="input") == 14
    assert "client-key" not in text


async def test_stats_sources_become_gauges_whatever_their_shape(wired):
    built = await wired()
    built.stats_sources["breakers"] = lambda: {"python": {"state": "open", "failures": 5}}
    built.stats_sources["cache"] = lambda: {"hits": 3, "misses": 1, "enabled": True}
    text = await scrape()
    assert sample(text, "gateway_stats_info", source="breakers", key="python.state",
                  value="open") == 1
    assert sample(text, "gateway_stats", source="breakers", key="python.failures") == 5
    assert sample(text, "gateway_stats", source="cache", key="hits") == 3
    assert sample(text, "gateway_stats", source="cache", key="enabled") == 1
    assert sample(text, "gateway_stats", source="limiter", key="decisions") == 0


async def test_upstream_failure_marks_the_attempt_span_and_counts_the_outcome(
        wired, backend, spans):
    await wired()

    def refuse(request):
        raise httpx.ConnectError("refused")

    backend.respond = refuse
    response = await proxy(make_request("POST", "/infer/python", b"{}"))
    assert response.status_code == 502
    # One CLIENT span per attempt: the retry and the fallback to node are attempts of their own.
    clients = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert len(clients) >= 2
    for client in clients:
        assert client.status.status_code.name == "ERROR"
        assert client.attributes["error.type"] == "upstream_unavailable"
    text = await scrape()
    counted = sum(sample(text, "gateway_upstream_attempts_total", backend=name,
                         outcome="upstream_unavailable") or 0 for name in ("python", "node"))
    assert counted == len(clients)
    assert sample(text, "gateway_upstream_attempts_total", backend="python",
                  outcome="upstream_unavailable") >= 1


async def test_telemetry_off_removes_the_stage_and_metrics_route(wired, backend):
    await wired(TELEMETRY_ENABLED="false")
    response = await proxy(make_request("POST", "/infer/python", b"{}"))
    await read_body(response)
    assert "traceparent" not in backend.seen[0].headers
    off = await metrics(make_request("GET", "/metrics"))
    assert off.status_code == 404
    assert json.loads(await read_body(off))["error"]["code"] == "not_found"


async def test_dashboard_is_one_self_contained_page():
    response = await dashboard(make_request("GET", "/_gateway/dashboard"))
    page = (await read_body(response)).decode()
    assert response.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    assert "<svg" in page and "../metrics" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_host_json_lets_requests_and_app_logs_reach_application_insights():
    from pathlib import Path

    host = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text())
    levels = host["logging"]["logLevel"]
    assert levels["Host.Results"] == "Information"  # the requests table
    assert levels["Function"] == "Information"  # the app's logs, request lines included
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert "Request" in sampling["excludedTypes"]  # every request counted, never sampled


async def test_a_cache_verdict_in_the_context_is_counted_and_logged(wired, caplog):
    built = await wired()

    async def verdict(request, call_next):
        request.context.cache_status = "hit"
        return await call_next(request)

    inner = built.handle
    built.handle = lambda request: verdict(request, inner)  # as a cache stage would
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        await read_body(await proxy(make_request("POST", "/infer/python", b"{}")))
    assert sample(await scrape(), "gateway_cache_lookups_total", result="hit") == 1
    line, = [r.getMessage() for r in caplog.records if r.name == "gateway.requests"]
    assert json.loads(line)["cache"] == "hit"


async def test_the_cache_stage_leaves_its_verdict_for_the_metrics_and_the_log(wired, caplog):
    """The real cache stage (not a stand-in): a GET's MISS, HIT and BYPASS reach
    gateway_cache_lookups_total and the request log; a route the cache does not serve leaves
    no verdict, whatever X-Cache the backend sends."""
    await wired(RATE_LIMIT_ENABLED="false")
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        for headers in ({}, {}, {"cache-control": "no-store"}):
            await read_body(await proxy(make_request("GET", "/slow", headers=headers)))
        await read_body(await proxy(make_request("POST", "/infer/python", b"{}")))
    text = await scrape()
    assert [sample(text, "gateway_cache_lookups_total", result=verdict)
            for verdict in ("miss", "hit", "bypass")] == [1, 1, 1]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.requests"]
    assert [line.get("cache") for line in lines] == ["miss", "hit", "bypass", None]


def test_entra_credential_comes_from_the_authentication_string():
    from azure.identity import ManagedIdentityCredential

    from function_app.adapters.otel_exporters import _credential

    assert isinstance(_credential("ClientId=abc;Authorization=AAD"), ManagedIdentityCredential)
    assert isinstance(_credential("Authorization=AAD"), ManagedIdentityCredential)
    assert _credential("") is None
    assert _credential("Authorization=Key") is None


def test_without_an_exporter_spans_still_carry_ids_for_logs_and_backends():
    from function_app.adapters.otel_exporters import ExportConfig, open_exporters

    exporters = open_exporters(ExportConfig("gw", 1.0, "", "", ""), "test-instance")
    assert exporters.meter is None
    root = exporters.tracer.start_span("GET")
    child = exporters.tracer.start_span("GET", context=trace.set_span_in_context(root))
    assert root.get_span_context().is_valid and not root.is_recording()
    assert child.get_span_context().trace_id == root.get_span_context().trace_id
    assert child.get_span_context().span_id != root.get_span_context().span_id


async def test_an_id_only_child_keeps_its_parents_trace_flags_and_state_and_sends_them_on():
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    from function_app.core.upstream import UpstreamRequest, UpstreamResponse
    from function_app.http.headers import Headers
    from function_app.telemetry.ids import IdOnlyTracer
    from function_app.telemetry.tracing import attempt_observer, trace_ids, traceparent

    state = TraceState([("vendor", "v1")])
    parent = NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(1), state))
    child = IdOnlyTracer().start_span("POST", context=trace.set_span_in_context(parent))
    ctx = child.get_span_context()
    assert (ctx.trace_id, ctx.trace_flags, ctx.trace_state) == (0xABC, 1, state)
    assert traceparent(child) == f"00-{0xABC:032x}-{ctx.span_id:016x}-01"
    assert trace_ids(child) == (f"{0xABC:032x}", f"{ctx.span_id:016x}")
    assert trace_ids(NonRecordingSpan(SpanContext(0, 0, False))) == ("", "")
    # An attempt replaces the client's trace headers with its own span's, child of `parent`,
    # each attempt its own span; the client's other headers stay.
    observe = attempt_observer(IdOnlyTracer(), parent, lambda url: "node", lambda *a: None)
    sent = []
    for _ in range(2):
        headers = Headers([("traceparent", "00-client"), ("TraceState", "client=1"),
                           ("x-keep", "1")])

        async def send(outgoing):
            return UpstreamResponse(200, Headers([("content-length", "0")]), b"")

        await observe(UpstreamRequest("POST", "http://b/x", headers, b"", 1.0, 1.0), send)
        (value,) = headers.get_all("traceparent")
        assert value.startswith(f"00-{0xABC:032x}-") and value.endswith("-01")
        assert value[36:52] not in ("0" * 16, f"{0xDEF:016x}")
        assert headers.get_all("tracestate") == ["vendor=v1"]
        assert headers.get_all("x-keep") == ["1"]
        sent.append(value)
    assert sent[0] != sent[1]
    # A parent without a trace state sends none (the client's is still removed).
    plain = NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(0)))
    observe = attempt_observer(IdOnlyTracer(), plain, lambda url: "node", lambda *a: None)
    headers = Headers([("traceparent", "00-client"), ("tracestate", "client=1")])
    await observe(UpstreamRequest("POST", "http://b/x", headers, b"", 1.0, 1.0), send)
    assert headers.get_all("tracestate") == [] and headers.get("traceparent").endswith("-00")


async def test_a_stream_cut_midway_marks_its_attempt_span_and_releases_its_member(
        wired, backend, spans):
    """The attempt's span and the member's outstanding count end from the upstream body's end
    hooks (DeadlineBody.on_end), not from generators around it: a stream whose backend dies
    after its first event still marks the span with the error and uncounts the member."""
    built = await wired()

    backend.respond = _dies_after(SSE_HI, "text/event-stream")
    response = await proxy(make_request("POST", "/v1/chat/completions", chat(stream=True),
                                        {"content-type": "application/json"}))
    assert await _outstanding(built) == 1  # the member holds the stream
    body = await read_body(response)
    assert body.startswith(b'data: {"choices"') and b'"code": "upstream_unavailable"' in body
    clients = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert len(clients) == 1
    assert clients[0].attributes["error.type"] == "upstream_unavailable"
    assert clients[0].status.status_code.name == "ERROR"
    assert await _outstanding(built) == 0


async def _outstanding(built) -> int:
    """The most requests outstanding on any member (the operator's health report, where a
    member may be listed in several pools)."""
    def most(node) -> int:
        if isinstance(node, dict):
            return max([v if k == "outstanding" else most(v) for k, v in node.items()] or [0])
        return max([most(v) for v in node] or [0]) if isinstance(node, list) else 0
    return most(await built.health.report(detail=True))


SSE_HI = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'


def _dies_after(first: bytes, content_type: str):
    """A backend answer (200, `content_type`) that sends `first`, then its connection resets."""
    def respond(request):
        async def pieces():
            yield first
            raise httpx.ReadError("reset by the backend")

        return httpx.Response(200, headers={"content-type": content_type},
                              stream=_Events(pieces()))

    return respond


class _Events(httpx.AsyncByteStream):
    def __init__(self, events):
        self.events = events

    async def __aiter__(self):
        async for event in self.events:
            yield event


async def _streamed(wired, backend, caplog, respond, stream: bool = True):
    """A chat answer streamed through the gateway; its body iterator and the request log."""
    await wired()
    backend.respond = respond
    caplog.set_level(logging.INFO, logger="gateway.requests")
    response = await proxy(make_request("POST", "/v1/chat/completions", chat(stream=stream),
                                        {"content-type": "application/json"}))
    return response.body_iterator


def _logged(caplog) -> dict:
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.requests"]
    assert len(lines) == 1
    return json.loads(lines[0])


async def test_a_streamed_answer_has_no_telemetry_layer_per_chunk_and_is_recorded(
        wired, backend, caplog, spans):
    """The telemetry stage hooks into the bill's body (core/body_watch.py) instead of wrapping
    it: `async for` iterates the bill's generator itself; the first chunk and the end are
    recorded as before."""
    body = await _streamed(wired, backend, caplog, answer)
    chunks = aiter(body)
    assert chunks.ag_code.co_name == "_tapped"  # the bill's own generator: no layer around it
    got = b"".join([chunk async for chunk in chunks])
    assert got.endswith(b"data: [DONE]\n\n")
    entry = _logged(caplog)
    assert entry["status"] == 200 and entry["ttft_ms"] >= 0 and "stream_error" not in entry
    server = [s for s in spans.get_finished_spans() if s.kind != SpanKind.CLIENT]
    assert [e.name for e in server[0].events] == ["gen_ai.first_chunk"]
    assert server[0].status.status_code.name != "ERROR"


async def test_a_stream_the_client_leaves_is_recorded_as_client_closed(wired, backend, caplog):
    body = await _streamed(wired, backend, caplog, answer)
    first = await anext(aiter(body))
    assert first.startswith(b"data: ")
    assert not [r for r in caplog.records if r.name == "gateway.requests"]  # not over yet
    await body.aclose()
    entry = _logged(caplog)
    assert entry["stream_error"] == "client_closed" and entry["ttft_ms"] >= 0


async def test_a_plain_answer_cut_by_its_backend_is_recorded_with_its_error(
        wired, backend, caplog, spans):
    """A streamed (unframed) JSON answer whose backend dies: the client's body is cut (the
    error raised through), the log names the error and the request's span is an error."""

    respond = _dies_after(b'{"choices": [', "application/json")
    body = await _streamed(wired, backend, caplog, respond, stream=False)
    with pytest.raises(Exception) as raised:
        [chunk async for chunk in body]
    assert getattr(raised.value, "code", None) == "upstream_unavailable"
    assert _logged(caplog)["stream_error"] == "upstream_unavailable"
    server = [s for s in spans.get_finished_spans() if s.kind != SpanKind.CLIENT]
    assert server[0].status.status_code.name == "ERROR"


async def test_a_stream_ended_by_an_error_event_is_recorded_as_ended(wired, backend, caplog):
    """The bill turns an upstream failure mid-stream into an OpenAI error event: the stream
    then ends as far as the client and the log are concerned (as it did before the watch)."""

    body = await _streamed(wired, backend, caplog, _dies_after(SSE_HI, "text/event-stream"))
    got = b"".join([chunk async for chunk in body])
    assert b'"code": "upstream_unavailable"' in got
    entry = _logged(caplog)
    assert "stream_error" not in entry and entry["tokens_out"] == 1
