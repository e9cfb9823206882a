"""Traces over real OTLP: gateway process -> OTLP receiver process, and the backend's view."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from .conftest import start_gateway, support_server

pytestmark = pytest.mark.e2e

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"
SERVER, CLIENT = 2, 3  # OTLP SpanKind values


receiver = support_server("otlp_receiver", "otlp-receiver")


@pytest.fixture(scope="module")
def traced_gateway(receiver, log_dir):
    routes = [{"path": "/traced/*", "methods": ["GET", "POST"], "backend": "recorder",
               "upstream_path": "/echo"}]
    proc = start_gateway(log_dir, "gateway-otlp", {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "RATE_LIMIT_ENABLED": "false",
        "TELEMETRY_TRACE_SAMPLE_RATIO": "1",
        "GATEWAY_BACKENDS": json.dumps({"recorder": receiver.url}),
        "GATEWAY_ROUTES": json.dumps(routes)})
    yield proc
    proc.stop()


def wait_for(fetch, ready, timeout=15.0):
    """Poll `fetch()` until `ready(result)`; the exporter batches, so spans arrive later."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if ready(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_trace_goes_from_gateway_to_backend_and_reaches_the_collector(
        traced_gateway, receiver):
    response = httpx.post(f"{traced_gateway.url}/traced/hello", json={"a": 1},
                          headers={"traceparent": CALLER, "x-request-id": "otlp-e2e"})
    assert response.status_code == 200
    echoed = httpx.get(f"{receiver.url}/echoed").json()
    assert len(echoed) == 1 and echoed[0]["path"] == "/echo/hello"
    sent = echoed[0]["traceparent"]
    assert sent.startswith(f"00-{CALLER_TRACE}-") and sent.endswith("-01")

    def ours():
        return [s for s in httpx.get(f"{receiver.url}/spans").json()
                if s["trace_id"] == CALLER_TRACE]

    spans = wait_for(ours, lambda found: len(found) >= 2)
    server = [s for s in spans if s["kind"] == SERVER]
    client = [s for s in spans if s["kind"] == CLIENT]
    assert len(server) == 1 and len(client) == 1, spans
    assert server[0]["parent_span_id"] == "b7ad6b7169203331"
    assert client[0]["parent_span_id"] == server[0]["span_id"]
    assert sent.split("-")[2] == client[0]["span_id"]  # the backend's parent is the attempt
    assert server[0]["name"] == "POST /traced/*"
    assert server[0]["attributes"]["http.response.status_code"] == 200
    assert server[0]["attributes"]["gateway.request_id"] == "otlp-e2e"
    assert client[0]["attributes"]["gateway.backend"] == "recorder"
    assert server[0]["resource"]["service.name"] == "ai-gateway"


def test_metrics_endpoint_and_request_log_line(traced_gateway):
    httpx.post(f"{traced_gateway.url}/traced/log", json={}, headers={"x-request-id": "log-1"})
    text = httpx.get(f"{traced_gateway.url}/metrics").text
    assert 'gateway_requests_total{backend="recorder",route="/traced/*",status_class="2xx"}' in text

    def line():
        for raw in traced_gateway.log.read_text(errors="replace").splitlines():
            if '"request_id":"log-1"' in raw:
                return json.loads(raw[raw.index("{"):])
        return None

    entry = wait_for(line, lambda found: found is not None, timeout=5)
    assert entry is not None
    assert (entry["route"], entry["backend"], entry["status"]) == ("/traced/*", "recorder", 200)
    assert len(entry["trace_id"]) == 32
