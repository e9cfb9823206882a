"""The `health_checks` timer registered on the FunctionApp fires through the local Functions host
and the real worker, records its probes in Azurite, and routing then skips a member whose probe
failed before its breaker has seen a single failure."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid

import httpx
import pytest

from function_app.adapters.breakerstore_table import open_routing_store
from scripts.procs import spawn_node

from .conftest import start_gateway
from .test_routing_e2e import FAST, infer, python_sim, routing, wait_for

pytestmark = pytest.mark.e2e


def read_probes(connection: str, table: str) -> dict:
    """backend -> its last recorded ProbeResult, straight from Table Storage."""

    async def read():
        store = open_routing_store(connection, "", table)
        try:
            return {p.backend: p for p in await store.read_probes()}
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture
def stack(log_dir, azurite):
    procs = {"python": python_sim(log_dir, "py-ta"), "python2": python_sim(log_dir, "py-tb"),
             "node": spawn_node("node-t", log_dir, FAST)}
    yield azurite, procs
    for proc in procs.values():
        proc.stop()


def test_the_timer_fires_through_the_host_and_routing_skips_a_member_marked_down(
        stack, log_dir):
    azurite, sims = stack
    table = f"rt{uuid.uuid4().hex[:8]}"
    routes = [{"path": "/infer/python", "methods": ["POST"], "backends": ["python", "python2"],
               "upstream_path": "/infer", "fallbacks": ["node"], "idempotent": True}]
    env = {"PY_SERVICE_URL": sims["python"].url, "NODE_SERVICE_URL": sims["node"].url,
           "GATEWAY_BACKENDS": json.dumps({"python2": sims["python2"].url}),
           "GATEWAY_ROUTES": json.dumps(routes), "UPSTREAM_TIMEOUT_S": "10",
           "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string, "ROUTING_TABLE": table,
           # every second instead of every 10 s: the host resolves %HEALTH_CHECK_SCHEDULE%
           "HEALTH_CHECK_SCHEDULE": "* * * * * *",
           # breakers that would not open on their own within this test, and no trial request
           # to a member probed down (one each BREAKER_OPEN_S) while it runs
           "BREAKER_FAILURES": "10000", "BREAKER_MIN_REQUESTS": "100000",
           "BREAKER_OPEN_S": "60"}
    proc = start_gateway(log_dir, "gw-timer", env)
    try:
        # Nothing calls the timer's body but the host: rows appear only if the timer fires.
        up = wait_for(lambda: (p := read_probes(azurite.connection_string, table))
                      and len(p) == 3 and all(r.ok for r in p.values()) and p, timeout=20)
        assert {name: r.status for name, r in up.items()} == {
            "python": 200, "python2": 200, "node": 200}
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            served = {infer(client).headers["x-gateway-backend"] for _ in range(30)}
            assert served == {"python", "python2"}
            victim = sims["python2"]
            os.killpg(victim.popen.pid, signal.SIGKILL)
            victim.popen.wait(timeout=5)
            # a later run of the timer records the failed probe ...
            down = wait_for(lambda: (r := read_probes(azurite.connection_string, table)
                                     ["python2"]) and not r.ok and r, timeout=20)
            assert down.at > up["python2"].at and down.status == 0
            # ... and the gateway reads it (BREAKER_CACHE_S) before we send anything more
            wait_for(lambda: _last_probe_ok(proc.url, "python2") is False, timeout=10)
            before = routing(proc.url)
            answers = [infer(client) for _ in range(30)]
        assert {a.status_code for a in answers} == {200}
        assert {a.headers["x-gateway-backend"] for a in answers} == {"python"}
        after = routing(proc.url)
        # skipped, not tried and retried: no attempt on python2, no retry, its breaker closed
        by_backend = after["by_route"]["/infer/python"]
        assert by_backend["python2"]["attempts"] == \
            before["by_route"]["/infer/python"]["python2"]["attempts"]
        assert after["totals"]["retries"] == before["totals"]["retries"]
        assert after["breakers"]["states"].get("python2", "closed") == "closed"
    finally:
        proc.stop()


def _last_probe_ok(url: str, backend: str) -> bool | None:
    health = httpx.get(f"{url}/_gateway/health", timeout=5).json()["routing"]
    for target in health["pools"]["/infer/python"]:
        for member in target["members"]:
            if member["backend"] == backend and member["last_probe"]:
                return member["last_probe"]["ok"]
    return None
