"""Through the local host to both real backend processes."""

import json
import time

import httpx
import pytest

from scripts.procs import free_port

from .conftest import start_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(gateway):
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def test_healthz_reports_both_backends_up(client):
    report = client.get("/healthz").json()
    assert report["ok"] is True
    assert report["backends"]["python"]["ok"] is True
    assert report["backends"]["node"]["ok"] is True


@pytest.mark.parametrize("route, model", [("python", "sim-python"), ("node", "sim-node")])
def test_infer_reaches_each_real_backend(client, route, model):
    response = client.post(f"/infer/{route}", json={"prompt": "hello"},
                           headers={"x-request-id": f"e2e-{route}"})
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == "echo: hello"
    assert body["model"] == model
    assert response.headers["x-request-id"] == f"e2e-{route}"


def test_backend_400_passes_through(client):
    response = client.post("/infer/node", json={"no_prompt": True})
    assert response.status_code == 400


def test_malformed_json_is_a_gateway_400(client):
    response = client.post("/infer/python", content=b"{oops",
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_unknown_path_is_a_json_404(client):
    response = client.get("/does/not/exist")
    assert response.status_code == 404
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_body_over_the_cap_is_413(client):
    response = client.post("/infer/python", json={"prompt": "x" * 10_000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_stream_reaches_the_client_chunk_by_chunk(client):
    request = {"model": "sim-python", "stream": True, "max_tokens": 8,
               "messages": [{"role": "user", "content": "count with me"}]}
    started = time.monotonic()
    arrivals = []
    with client.stream("POST", "/sim/v1/chat/completions", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - started, line))
    assert arrivals[-1][1] == "data: [DONE]"
    first, last = arrivals[0][0], arrivals[-1][0]
    # 8 tokens at 30 ms each follow the first chunk; a buffering proxy would deliver all at once.
    assert last - first > 0.15
    assert json.loads(arrivals[0][1][6:])["object"] == "chat.completion.chunk"


def test_a_down_backend_shows_in_health_and_gives_502(backends, log_dir):
    dead = f"http://127.0.0.1:{free_port()}"
    proc = start_gateway(log_dir, "gateway-dead-node", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": dead})
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            report = client.get("/healthz")
            assert report.status_code == 200
            assert report.json()["backends"]["node"]["ok"] is False
            assert report.json()["backends"]["python"]["ok"] is True
            response = client.post("/infer/node", json={"prompt": "x"})
            assert response.status_code == 502
            assert response.json()["error"]["code"] == "upstream_unavailable"
            assert dead.split(":")[-1] not in response.text
    finally:
        proc.stop()


def test_bad_setting_shows_as_misconfigured_and_the_worker_log_names_it(log_dir):
    # Under the real worker indexing succeeds whatever the settings; the gateway is built on
    # the first request, so /healthz is where an operator sees it.
    proc = start_gateway(log_dir, "gateway-bad", {"PY_SERVICE_URL": "not-a-url"})
    try:
        answer = httpx.get(f"{proc.url}/healthz", timeout=10)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "misconfigured"
        assert "PY_SERVICE_URL" not in answer.text and "not-a-url" not in answer.text
        deadline = time.monotonic() + 10
        while "PY_SERVICE_URL" not in proc.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "gateway cannot start: setting PY_SERVICE_URL" in proc.log.read_text()
    finally:
        proc.stop()
