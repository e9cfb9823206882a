"""The response cache through real processes: both simulators, gateways on the local host, a
real redis-server and Azurite Blob as the shared tiers."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.support.cache_servers import azurite_blob_fixture, redis_fixture

from .conftest import start_gateway

pytestmark = pytest.mark.e2e

redis_server = redis_fixture()
azurite_blob = azurite_blob_fixture()


def base_env(backends) -> dict[str, str]:
    return {"PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
            "CACHE_COMPLETIONS": "sim-python"}


@pytest.fixture(scope="module")
def memory_gateway(backends, log_dir):
    proc = start_gateway(log_dir, "cache-gateway", base_env(backends))
    yield proc
    proc.stop()


def cachez(url: str) -> dict:
    return httpx.get(f"{url}/cachez", timeout=5).json()


@pytest.mark.parametrize("backend", ["python", "node"])
def test_slow_is_cached_per_backend(memory_gateway, backend):
    path = f"/slow/{backend}?run={uuid.uuid4().hex}"
    first = httpx.get(memory_gateway.url + path, timeout=5)
    second = httpx.get(memory_gateway.url + path, timeout=5)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"ok": True, "service": f"{backend}-sim",
                                             "slow_ms": 120}
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.headers["cache-control"] == "max-age=30" and "age" in second.headers
    assert second.headers["x-ratelimit-limit"]  # a hit is still a rate-limited request


def test_limited_and_cachez(memory_gateway):
    answer = httpx.get(memory_gateway.url + "/limited", timeout=5)
    assert answer.json() == {"ok": True} and answer.headers["ratelimit-policy"]
    report = cachez(memory_gateway.url)
    assert {"hits", "misses", "hit_ratio", "backend", "ttl", "coalesced"} <= set(report)
    assert report["backend"] == "memory" and report["ttl"] == 30
    stats = httpx.get(memory_gateway.url + "/_gateway/stats", timeout=5).json()
    assert stats["cache"]["tiers"]["memory"]["entries"] >= 1


def stream_chunks(url: str, body: dict) -> tuple[str, list[bytes]]:
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        return response.headers["x-cache"], list(response.iter_raw())


def test_a_streamed_completion_is_replayed_from_the_cache(memory_gateway):
    body = {"model": "sim-python", "stream": True, "max_tokens": 5,
            "messages": [{"role": "user", "content": f"cache me {uuid.uuid4().hex}"}]}
    state, first = stream_chunks(memory_gateway.url, body)
    again, second = stream_chunks(memory_gateway.url, {**body, "user": "someone"})
    assert (state, again) == ("MISS", "HIT")
    assert b"".join(second) == b"".join(first)
    assert b"".join(second).endswith(b"data: [DONE]\n\n")
    plain = httpx.post(memory_gateway.url + "/v1/chat/completions",
                       json={**body, "stream": False}, timeout=10)
    assert plain.headers["x-cache"] == "HIT"
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in b"".join(first).decode().split("\n\n")
                   if line.startswith("data: {") and json.loads(line[6:])["choices"])
    assert plain.json()["choices"][0]["message"]["content"] == text


def wait_for(condition, within_s: float = 10.0):
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("shared", ["redis", "blob"])
def test_three_instances_share_hits(backends, log_dir, request, shared):
    # A generous deadline: this test is about sharing, and a loaded machine can make Azurite
    # slower than the default 0.25 s (which would count as a timeout and a miss).
    env = base_env(backends) | {"CACHE_BACKEND": shared, "CACHE_SHARED_TIMEOUT_S": "5"}
    if shared == "redis":
        env["CACHE_REDIS_URL"] = request.getfixturevalue("redis_server").url
    else:
        env["CACHE_BLOB_CONNECTION"] = request.getfixturevalue("azurite_blob").connection_string
        env["CACHE_BLOB_CONTAINER"] = f"e2e{uuid.uuid4().hex[:10]}"
    gateways = [start_gateway(log_dir, f"cache-{shared}-{i}", env) for i in range(3)]
    try:
        path = f"/slow?run={uuid.uuid4().hex}"
        # One public host name in front of every instance, as in Azure: the key holds the
        # host the backend is told, and each instance here listens on a port of its own.
        host = {"host": "gateway.test"}
        first = httpx.get(gateways[0].url + path, headers=host, timeout=5)
        assert first.headers["x-cache"] == "MISS"
        wait_for(lambda: cachez(gateways[0].url)["tiers"][shared]["writes"] >= 1)
        for other in gateways[1:]:
            answer = httpx.get(other.url + path, headers=host, timeout=5)
            assert answer.headers["x-cache"] == "HIT" and answer.json() == first.json()
            report = cachez(other.url)
            assert report["backend"] == shared and report["tiers"][shared]["hits"] == 1
    finally:
        for proc in gateways:
            proc.stop()


def test_a_dead_shared_tier_never_fails_a_request(backends, log_dir):
    from scripts.procs import free_port

    env = base_env(backends) | {"CACHE_BACKEND": "redis", "CACHE_SHARED_TIMEOUT_S": "0.2",
                                "CACHE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    proc = start_gateway(log_dir, "cache-dead-redis", env)
    try:
        path = f"/slow?run={uuid.uuid4().hex}"
        answers = [httpx.get(proc.url + path, timeout=5) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["x-cache"] for a in answers] == ["MISS", "HIT", "HIT"]
        tier = cachez(proc.url)["tiers"]["redis"]
        assert tier["errors"] + tier["timeouts"] + tier["write_errors"] >= 1
    finally:
        proc.stop()
