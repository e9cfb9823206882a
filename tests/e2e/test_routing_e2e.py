"""Resilient routing against real backend processes and Azurite: pools, retries, budgets,
fallbacks, breakers shared by two gateway processes, the health checks' timer body, and a
stream whose backend dies after its first byte."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import httpx
import openai
import pytest

from function_app.adapters.breakerstore_table import open_routing_store
from function_app.routing.store import ProbeResult
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway
from scripts.procs import Proc, free_port, spawn_node, spawn_uvicorn
from tests.support.azurite import Azurite

from .conftest import start_gateway

pytestmark = pytest.mark.e2e
FAST = {"LATENCY_MIN_MS": "5", "LATENCY_MAX_MS": "10", "TTFT_MS": "50", "TOKEN_MS": "30"}


def python_sim(log_dir, name: str, port: int | None = None, **env: str) -> Proc:
    return spawn_uvicorn(name, log_dir, "python", {**FAST, "MODEL_NAME": name, **env}, port=port)


@pytest.fixture(scope="module")
def sims(log_dir):
    """Two Python simulators and the Node one, owned by this module (tests kill them)."""
    procs = {"python": python_sim(log_dir, "py-a"), "python2": python_sim(log_dir, "py-b")}
    procs["node"] = spawn_node("node-r", log_dir, FAST)
    yield procs
    for proc in procs.values():
        proc.stop()


def pool_env(sims, **extra: str) -> dict[str, str]:
    routes = [{"path": "/infer/python", "methods": ["POST"], "backends": ["python", "python2"],
               "upstream_path": "/infer", "fallbacks": ["node"], "idempotent": True},
              {"path": "/infer/node", "methods": ["POST"], "backend": "node",
               "upstream_path": "/infer"}]
    return {"PY_SERVICE_URL": sims["python"].url, "NODE_SERVICE_URL": sims["node"].url,
            "GATEWAY_BACKENDS": json.dumps({"python2": sims["python2"].url}),
            "GATEWAY_ROUTES": json.dumps(routes), "RATE_LIMIT_STORAGE_CONNECTION": "",
            "UPSTREAM_TIMEOUT_S": "10",
            # The health-check timer would mark a dead member down before its breaker opens;
            # these tests watch breakers, so the timer is off (the host honours this setting).
            "AzureWebJobs.health_checks.Disabled": "true", **extra}


def infer(client: httpx.Client, path: str = "/infer/python", **headers: str) -> httpx.Response:
    return client.post(path, json={"prompt": "hi"}, headers=headers)


def routing(url: str) -> dict:
    return httpx.get(f"{url}/_gateway/stats", timeout=5).json()["routing"]


def wait_for(condition, timeout: float = 15.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def pool_gateway(sims, log_dir):
    proc = start_gateway(log_dir, "gw-pool", pool_env(sims))
    yield proc
    proc.stop()


def test_a_pool_spreads_requests_and_each_answer_names_its_backend(pool_gateway):
    with httpx.Client(base_url=pool_gateway.url, timeout=10) as client:
        answers = [infer(client) for _ in range(40)]
    assert {a.status_code for a in answers} == {200}
    served = {a.headers["x-gateway-backend"] for a in answers}
    assert served == {"python", "python2"}
    assert {a.json()["model"] for a in answers} == {"py-a", "py-b"}


def test_an_injected_503_is_retried_on_the_real_backend(pool_gateway):
    key = uuid.uuid4().hex
    before = routing(pool_gateway.url)["totals"]["retries"]
    with httpx.Client(base_url=pool_gateway.url, timeout=10) as client:
        # a 503 is a refusal, so even this POST on a route not marked idempotent goes again
        answer = infer(client, "/infer/node", **{"x-sim-error": "503",
                                                 "x-sim-error-times": "1", "x-sim-error-key": key})
    assert answer.status_code == 200
    assert routing(pool_gateway.url)["totals"]["retries"] == before + 1


def test_the_budget_stops_retries_and_the_backend_answer_passes_through(sims, log_dir):
    proc = start_gateway(log_dir, "gw-budget", pool_env(
        sims, RETRY_BUDGET_MIN_PER_S="0.2", RETRY_BUDGET_RATIO="0",
        BREAKER_FAILURES="100"))
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            statuses = [infer(client, "/infer/node", **{"x-sim-error": "503"}).status_code
                        for _ in range(5)]
        assert statuses == [503] * 5
        counts = routing(proc.url)["by_route"]["/infer/node"]["node"]
        assert counts["retries"] == 2 and counts["budget_refusals"] == 3
        assert counts["attempts"] == 7
    finally:
        proc.stop()


def test_python_down_falls_back_to_node_with_the_seed_routes(sims, log_dir):
    dead = f"http://127.0.0.1:{free_port()}"
    proc = start_gateway(log_dir, "gw-seed", {"PY_SERVICE_URL": dead,
                                              "NODE_SERVICE_URL": sims["node"].url,
                                              "RATE_LIMIT_STORAGE_CONNECTION": ""})
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            answers = [infer(client) for _ in range(10)]
        assert {a.status_code for a in answers} == {200}
        assert {a.headers["x-gateway-backend"] for a in answers} == {"node"}
        stats = routing(proc.url)
        assert stats["breakers"]["states"]["python"] in ("open", "half_open")
        assert stats["by_route"]["/infer/python"]["node"]["fallbacks"] == 10
    finally:
        proc.stop()


def test_a_killed_member_is_routed_around_without_client_errors(sims, log_dir):
    proc = start_gateway(log_dir, "gw-kill", pool_env(sims))
    victim = sims["python2"]
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            assert infer(client).status_code == 200
            os.killpg(victim.popen.pid, signal.SIGKILL)
            victim.popen.wait(timeout=5)
            answers = [infer(client) for _ in range(60)]
            assert {a.status_code for a in answers} == {200}
            assert {a.headers["x-gateway-backend"] for a in answers[-20:]} == {"python"}
            stats = routing(proc.url)
            assert stats["breakers"]["states"]["python2"] in ("open", "half_open")
            # retries stayed within the budget: the floor (3/s x 10 s) plus 20 % of requests
            assert stats["totals"]["retries"] <= 30 + 0.2 * 61
            sims["python2"] = python_sim(log_dir, "py-b", port=victim.port)
            wait_for(lambda: "python2" in {infer(client).headers["x-gateway-backend"]
                                           for _ in range(10)})
    finally:
        proc.stop()


def test_an_open_breaker_is_shared_by_two_gateway_processes(sims, azurite, log_dir):
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**pool_env(sims), "PY_SERVICE_URL": dead, "BREAKER_OPEN_S": "60",
           "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
           "ROUTING_TABLE": f"rt{uuid.uuid4().hex[:8]}"}
    first = start_gateway(log_dir, "gw-share-a", env)
    second = start_gateway(log_dir, "gw-share-b", env)
    try:
        with httpx.Client(base_url=first.url, timeout=10) as client:
            wait_for(lambda: infer(client) and
                     routing(first.url)["breakers"]["states"].get("python") == "open")
        wait_for(lambda: routing(second.url)["breakers"]["states"].get("python") == "open",
                 timeout=5)
        with httpx.Client(base_url=second.url, timeout=10) as client:
            answers = [infer(client) for _ in range(20)]
        assert {a.status_code for a in answers} == {200}
        by_backend = routing(second.url)["by_route"]["/infer/python"]
        assert "python" not in by_backend  # never tried: the row said open
        health = httpx.get(f"{second.url}/_gateway/health", timeout=5).json()["routing"]
        members = {m["backend"]: m for t in health["pools"]["/infer/python"]
                   for m in t["members"]}
        assert members["python"]["breaker"] == "open"
        assert health["breaker_storage_healthy"] is True
    finally:
        first.stop()
        second.stop()


async def test_the_timer_body_probes_records_and_the_gateways_skip_a_member_marked_down(
        sims, azurite, log_dir):
    table = f"rt{uuid.uuid4().hex[:8]}"
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**pool_env(sims), "NODE_SERVICE_URL": dead,
           "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string, "ROUTING_TABLE": table}
    gateway = await build_gateway(load_settings(env))
    try:
        done = await gateway.health_checks()
        assert done["ran"] is True
        assert done["results"]["python"]["ok"] and not done["results"]["node"]["ok"]
        assert (await gateway.health_checks())["ran"] is True  # the holder renews its lease
    finally:
        await gateway.aclose()
    store = open_routing_store(azurite.connection_string, "", table)
    assert {p.backend: p.ok for p in await store.read_probes()} == {
        "python": True, "python2": True, "node": False}
    # A probe says python2 is down: a gateway on the same storage stops picking it.
    await store.record_probe(ProbeResult("python2", False, time.time() + 60, 1.0, 503))
    await store.close()
    proc = start_gateway(log_dir, "gw-probed", env)
    try:
        detail = f"{proc.url}/_gateway/health"  # the operator view has the pools
        health = wait_for(lambda: httpx.get(detail, timeout=5).json()["routing"]
                          if httpx.get(detail, timeout=5).json()["routing"]
                          ["pools"]["/infer/python"][0]["members"][1]["last_probe"] else None)
        members = health["pools"]["/infer/python"][0]["members"]
        assert [m["last_probe"]["ok"] for m in members] == [True, False]
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            served = {infer(client).headers["x-gateway-backend"] for _ in range(20)}
        assert served == {"python"}
    finally:
        proc.stop()


def test_a_stream_whose_backend_dies_ends_with_an_openai_error(log_dir):
    sim = python_sim(log_dir, "py-stream", TTFT_MS="50", TOKEN_MS="300")
    proc = start_gateway(log_dir, "gw-stream", {
        "MODEL_ROUTES": json.dumps({"sim-small": sim.url}), "PY_SERVICE_URL": sim.url,
        "RATE_LIMIT_STORAGE_CONNECTION": "", "UPSTREAM_TIMEOUT_S": "20"})
    try:
        sdk = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="sk-test", max_retries=0,
                            timeout=20)
        stream = sdk.chat.completions.create(
            model="sim-small", stream=True,
            messages=[{"role": "user", "content": "one two three four five six"}])
        received = []
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                received.append(chunk)
                if len(received) == 2:
                    os.killpg(sim.popen.pid, signal.SIGKILL)
        assert 2 <= len(received) < 16
        assert "backend" in str(caught.value.message).lower()
        tokens = httpx.get(f"{proc.url}/_gateway/stats", timeout=5).json()["tokens"]
        by_model = next(iter(tokens["by_client"].values()))["sim-small"]
        assert by_model["completion_tokens"] == len(received)  # billed for what was sent
        assert by_model["prompt_tokens"] == -(-len("one two three four five six") // 4) + 4
    finally:
        proc.stop()
        sim.stop()


def test_with_storage_unreachable_breakers_work_per_instance(sims, log_dir):
    dead = f"http://127.0.0.1:{free_port()}"
    nowhere = Azurite(log_dir / "never-started")  # a connection string to a closed port
    env = {**pool_env(sims), "PY_SERVICE_URL": dead, "RATE_LIMIT_ENABLED": "false",
           "RATE_LIMIT_STORAGE_CONNECTION": nowhere.connection_string}
    proc = start_gateway(log_dir, "gw-nostore", env)
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            answers = [infer(client) for _ in range(30)]
            assert {a.status_code for a in answers} == {200}
            stats = routing(proc.url)
            assert stats["breakers"]["states"]["python"] in ("open", "half_open")
            assert stats["breakers"]["storage_healthy"] is False
            health = client.get("/healthz").json()["routing"]
            assert health["breaker_storage_healthy"] is False
    finally:
        proc.stop()
