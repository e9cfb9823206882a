"""/healthz and /infer of both simulators."""

from __future__ import annotations

import time

import httpx
import pytest

from .conftest import SimPool


def test_healthz_names_service_and_model(api: httpx.Client, kind: str) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "service": f"{kind}-sim", "model": f"sim-{kind}"}


def test_infer_echoes_prompt_within_latency_bounds(api: httpx.Client, kind: str) -> None:
    for _ in range(5):
        started = time.monotonic()
        response = api.post("/infer", json={"prompt": "hello"})
        elapsed_ms = (time.monotonic() - started) * 1000
        assert response.status_code == 200
        body = response.json()
        assert body["result"] == "echo: hello"
        assert body["model"] == f"sim-{kind}"
        assert 5 <= body["latency_ms"] <= 15  # LATENCY_MIN_MS / LATENCY_MAX_MS of BASE_ENV
        assert elapsed_ms >= body["latency_ms"]


def test_infer_without_latency(sim_pool: SimPool, kind: str) -> None:
    url = sim_pool.url(kind, LATENCY_MIN_MS="0", LATENCY_MAX_MS="0")
    response = httpx.post(f"{url}/infer", json={"prompt": ""})
    assert response.status_code == 200
    assert response.json()["result"] == "echo: "
    assert response.json()["latency_ms"] == 0


@pytest.mark.parametrize("content", [
    b"not json", b"[1, 2]", b'"text"', b"{}", b'{"prompt": 5}', b'{"prompt": null}',
])
def test_infer_rejects_bad_bodies(api: httpx.Client, content: bytes) -> None:
    response = api.post("/infer", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert isinstance(error["message"], str)
    assert error["message"]


def test_error_rate_one_fails_every_infer(sim_pool: SimPool, kind: str) -> None:
    url = sim_pool.url(kind, ERROR_RATE="1", LATENCY_MIN_MS="0", LATENCY_MAX_MS="0")
    for _ in range(3):
        response = httpx.post(f"{url}/infer", json={"prompt": "hi"})
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "simulated_error"
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_slow_answers_after_120_ms(api: httpx.Client, kind: str) -> None:
    started = time.monotonic()
    response = api.get("/slow")
    assert (time.monotonic() - started) >= 0.12
    assert response.status_code == 200
    assert response.json() == {"ok": True, "service": f"{kind}-sim", "slow_ms": 120}
    assert api.head("/slow").status_code == 200
