"""The deployed telemetry path, locally: the gateway process with the App Insights connection
string (APPLICATIONINSIGHTS_CONNECTION_STRING) pointing at an ingestion receiver on 127.0.0.1
(tests/support/appinsights_receiver.py), nothing leaving the machine. What Application Insights
gets from the worker: per sampled request one `requests` item (the gateway's SERVER span) and
one `dependencies` item per upstream attempt (HTTP), with the sample rate for itemCount. Not
from the worker: log records (the request line included; the Functions host forwards logs),
Live Metrics, FastAPI's own spans. At ratio 0 nothing per request, while backends still get a
`traceparent`."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from scripts.procs import free_port
from tests.support.appinsights_receiver import LOCAL_ONLY_ENV, connection_string

from .conftest import start_gateway, support_server

pytestmark = pytest.mark.e2e

CALLER_TRACE = "5bf92f3577b34da6a3ce929d0e0e4737"
CALLER_SPAN = "a0f067aa0ba902b8"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

ingest = support_server("appinsights_receiver", "appinsights-receiver")
ingest_unsampled = support_server("appinsights_receiver", "appinsights-receiver-0")
recorder = support_server("otlp_receiver", "ai-recorder")  # a backend that keeps traceparents


def gateway_env(receiver, recorder, ratio: str) -> dict[str, str]:
    routes = [{"path": "/traced/*", "methods": ["GET", "POST"], "backend": "recorder",
               "upstream_path": "/echo"},
              {"path": "/down/*", "methods": ["POST"], "backend": "down", "upstream_path": "/"}]
    return {"APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(receiver.url),
            **LOCAL_ONLY_ENV, "TELEMETRY_TRACE_SAMPLE_RATIO": ratio,
            "RATE_LIMIT_ENABLED": "false", "RETRY_MAX_ATTEMPTS": "1",
            "GATEWAY_BACKENDS": json.dumps({"recorder": recorder.url,
                                            "down": f"http://127.0.0.1:{free_port()}"}),
            "GATEWAY_ROUTES": json.dumps(routes)}


@pytest.fixture(scope="module")
def sampled_gateway(ingest, recorder, log_dir):
    proc = start_gateway(log_dir, "gateway-appinsights", gateway_env(ingest, recorder, "1"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def unsampled_gateway(ingest_unsampled, recorder, log_dir):
    proc = start_gateway(log_dir, "gateway-appinsights-0",
                         gateway_env(ingest_unsampled, recorder, "0"))
    yield proc
    proc.stop()


def items(receiver, operation: str | None = None) -> list[dict]:
    got = httpx.get(f"{receiver.url}/items").json()
    return [i for i in got if operation is None or i["operation_id"] == operation]


def wait_for(fetch, ready, timeout=20.0):
    """Poll until `ready(fetch())`: spans are batched (every 5 s) before they are sent."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if ready(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_a_sampled_request_is_one_request_item_and_one_dependency_item(sampled_gateway, ingest,
                                                                     recorder):
    response = httpx.post(f"{sampled_gateway.url}/traced/hello", json={"a": 1},
                          headers={"traceparent": CALLER, "x-request-id": "ai-e2e"})
    assert response.status_code == 200
    got = wait_for(lambda: items(ingest, CALLER_TRACE), lambda found: len(found) >= 2)
    time.sleep(1.0)  # anything else of this operation would be in the same batch
    got = items(ingest, CALLER_TRACE)
    assert sorted(i["kind"] for i in got) == ["RemoteDependency", "Request"], got
    request = next(i for i in got if i["kind"] == "Request")
    dependency = next(i for i in got if i["kind"] == "RemoteDependency")
    assert request["parent_id"] == CALLER_SPAN and request["responseCode"] == "200"
    assert request["success"] is True and request["cloud_role"] == "ai-gateway"
    assert request["properties"]["gateway.request_id"] == "ai-e2e"
    assert dependency["parent_id"] == request["id"] and dependency["type"] == "HTTP"
    assert dependency["target"] == recorder.url.split("//", 1)[1]
    assert dependency["properties"]["gateway.backend"] == "recorder"
    assert request["sample_rate"] == dependency["sample_rate"] == 100.0
    sent = [e for e in httpx.get(f"{recorder.url}/echoed").json()
            if (e["traceparent"] or "").split("-")[1:2] == [CALLER_TRACE]]
    assert sent and sent[-1]["traceparent"].split("-")[2] == dependency["id"]


def test_a_failed_attempt_is_a_failed_dependency(sampled_gateway, ingest):
    trace_id = "6bf92f3577b34da6a3ce929d0e0e4738"
    response = httpx.post(f"{sampled_gateway.url}/down/x", json={},
                          headers={"traceparent": f"00-{trace_id}-{CALLER_SPAN}-01"})
    assert response.status_code >= 500 and response.json()["error"]["code"]
    got = wait_for(lambda: items(ingest, trace_id), lambda found: len(found) >= 2)
    dependency = next(i for i in got if i["kind"] == "RemoteDependency")
    request = next(i for i in got if i["kind"] == "Request")
    assert dependency["success"] is False and dependency["parent_id"] == request["id"]
    assert request["responseCode"] == str(response.status_code)


def test_logs_live_metrics_and_framework_spans_are_not_sent_from_the_worker(
        sampled_gateway, ingest):
    """The request line and every other log record reach Application Insights through the
    Functions host, once; Live Metrics comes from the host too; FastAPI's own telemetry (a
    span tree per request) stays off, since the gateway's providers are not process-wide."""
    for n in range(5):
        trace_id = f"7bf92f3577b34da6a3ce929d0e0e47{n:02x}"
        assert httpx.post(f"{sampled_gateway.url}/traced/n{n}", json={}, headers={
            "traceparent": f"00-{trace_id}-{CALLER_SPAN}-01"}).status_code == 200
    ours = wait_for(lambda: [i for i in items(ingest)
                             if (i["operation_id"] or "").startswith("7bf92f35")],
                    lambda found: len(found) >= 10)
    time.sleep(1.0)
    everything = items(ingest)
    assert len([i for i in everything if (i["operation_id"] or "").startswith("7bf92f35")]) \
        == len(ours) == 10  # one request and one dependency each, nothing of FastAPI's
    kinds = {i["kind"] for i in everything}
    assert kinds <= {"Request", "RemoteDependency", "Metric"}, kinds  # no Message: no logs
    metrics = {m["name"] for i in everything if i["kind"] == "Metric" for m in i["metrics"]}
    assert not any(name.startswith("\\") for name in metrics)  # no performance counters
    assert httpx.get(f"{ingest.url}/live").json() == {}
    assert httpx.get(f"{ingest.url}/other").json() == {}


def test_at_ratio_zero_nothing_per_request_is_sent_and_backends_still_get_a_traceparent(
        unsampled_gateway, ingest_unsampled, recorder):
    for n in range(5):
        response = httpx.post(f"{unsampled_gateway.url}/traced/zero{n}", json={})
        assert response.status_code == 200
    time.sleep(6.5)  # past the span batch's 5 s
    assert [i for i in items(ingest_unsampled) if i["kind"] != "Metric"] == []
    sent = [e for e in httpx.get(f"{recorder.url}/echoed").json()
            if e["path"].startswith("/echo/zero")]
    assert len(sent) == 5
    assert all(e["traceparent"].startswith("00-") and e["traceparent"].endswith("-02")
               for e in sent)  # a new trace, not sampled (the SDK's random-id bit set)


ingest_direct = support_server("appinsights_receiver", "appinsights-receiver-direct")


def test_span_events_exceptions_and_genai_metrics_reach_their_tables(ingest_direct,
                                                                     monkeypatch, tmp_path):
    """The exporters as open_exporters makes them for Azure, in this process: a span event is
    a `traces` item of its trace, an exception event an `exceptions` item, the GenAI
    histograms `customMetrics` (flushed by the closers, as at shutdown)."""
    import asyncio
    from types import SimpleNamespace

    from opentelemetry.trace import SpanKind

    from function_app.adapters.otel_exporters import ExportConfig, open_exporters
    from function_app.telemetry.otel_metrics import OtelInstruments

    for key, value in LOCAL_ONLY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    exporters = open_exporters(ExportConfig("ai-gateway", 1.0,
                                            connection_string(ingest_direct.url), "", ""), "i1")
    span = exporters.tracer.start_span("POST", kind=SpanKind.SERVER)
    span.add_event("gateway.rate_limited", {"gateway.ratelimit.scope": "client"})
    span.record_exception(ValueError("boom"))
    trace_id = f"{span.get_span_context().trace_id:032x}"
    span.end()
    OtelInstruments(exporters.meter).request(
        "gpt-4o", SimpleNamespace(prompt_tokens=3, completion_tokens=5), 0.25)
    for close in exporters.closers:
        asyncio.run(close())
    got = items(ingest_direct)
    ours = {i["kind"]: i for i in got if i["operation_id"] == trace_id}
    assert set(ours) == {"Request", "Message", "Exception"}, got
    assert ours["Message"]["message"] == "gateway.rate_limited"
    assert ours["Exception"]["exceptions"][0]["typeName"] == "ValueError"
    assert ours["Message"]["sample_rate"] == ours["Exception"]["sample_rate"] == 100.0
    metrics = {m["name"] for i in got if i["kind"] == "Metric" for m in i["metrics"]}
    assert {"gen_ai.client.token.usage", "gen_ai.server.time_to_first_token"} <= metrics
