"""Rate limits shared by several gateway processes over one Azurite, and Azurite failing."""

import asyncio
import json
import math
import time

import httpx
import pytest

from tests.support.azurite import Azurite
from tests.support.drive import drive

from .conftest import start_gateway

pytestmark = pytest.mark.e2e

RATE, BURST, LEASE_S = 100.0, 100.0, 0.25


def harmonic(n: int) -> float:
    return sum(1 / k for k in range(1, n + 1))


def overshoot_bound(instances: int, seconds: float) -> float:
    """The README's bound: burst + rate*T + rate*lease_s*H(N) + N*cost (cost 1)."""
    return BURST + RATE * seconds + RATE * LEASE_S * harmonic(instances) + instances


def limited_env(backends, azurite: Azurite, **extra: str) -> dict[str, str]:
    return {"PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
            "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
            "GLOBAL_RPS": str(RATE), "GLOBAL_BURST": str(BURST), "CLIENT_RPS": "0",
            "RATE_LIMIT_LEASE_S": str(LEASE_S), **extra}


def stats(url: str) -> dict:
    return httpx.get(f"{url}/_gateway/stats", timeout=5).json()["limiter"]


def wait_until_leasing(gateway_url: str, url: list[str], leases_before: int,
                       patience_s: float = 60.0) -> bool:
    """Drive light traffic until the limiter is healthy and has leased from storage again.

    A condition, not a clock: on a loaded machine Azurite's restart alone can take seconds.
    """
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        asyncio.run(drive(url, seconds=0.2, workers=2, pause_s=0.05))
        now = stats(gateway_url)
        if now["storage_healthy"] and now["leases"] > leases_before:
            return True
    return False


@pytest.fixture
def azurite(tmp_path):
    server = Azurite(tmp_path / "azurite").start()
    yield server
    server.stop()


def test_three_instances_admit_the_global_limit_within_the_stated_bound(backends, azurite,
                                                                       log_dir):
    gateways = [start_gateway(log_dir, f"gw-shared-{i}", limited_env(backends, azurite))
                for i in range(3)]
    try:
        run = asyncio.run(drive([f"{g.url}/infer/python" for g in gateways], seconds=6,
                                workers=24, check_headers=True))
        counters = [stats(g.url) for g in gateways]
    finally:
        for gateway in gateways:
            gateway.stop()
    bound = overshoot_bound(3, run.elapsed)
    assert set(run.statuses) == {200, 429}, run.statuses
    assert set(run.codes) == {"rate_limited"}
    assert run.missing_headers == 0
    assert run.admitted <= bound, (run.admitted, bound)
    # Not starved either: tokens stranded in leases cost a little, never most of the limit.
    assert run.admitted >= 0.8 * (RATE * run.elapsed), (run.admitted, run.elapsed)
    assert all(c["admitted"] > 0 for c in counters)  # every instance took part
    round_trips = sum(c["storage_round_trips"] for c in counters)
    assert round_trips < sum(run.statuses.values()) / 4  # far from a storage call per request


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_azurite_stopping_follows_the_failure_mode_and_recovers(backends, azurite, log_dir,
                                                                mode):
    env = limited_env(backends, azurite, RATE_LIMIT_FAILURE_MODE=mode,
                      RATE_LIMIT_STORAGE_TIMEOUT_S="0.3", RATE_LIMIT_EXPECTED_INSTANCES="2")
    gateway = start_gateway(log_dir, f"gw-fault-{mode}", env)
    url = [f"{gateway.url}/infer/python"]
    try:
        before = asyncio.run(drive(url, seconds=2, workers=4, pause_s=0.02))
        azurite.stop()
        during = asyncio.run(drive(url, seconds=4, workers=4, pause_s=0.02))
        down = stats(gateway.url)
        azurite.start()
        recovered = wait_until_leasing(gateway.url, url, down["leases"])
        after = asyncio.run(drive(url, seconds=2, workers=4, pause_s=0.02))
        healed = stats(gateway.url)
    finally:
        gateway.stop()
    assert before.admitted > 0 and set(before.statuses) <= {200, 429}
    assert 500 not in during.statuses and "connection_error" not in during.statuses
    assert down["decisions_without_storage"] > 0
    if mode == "open":
        assert set(during.statuses) <= {200, 429}
        # Local safe capacity: rate / expected instances, plus its burst, over the outage.
        assert during.admitted <= BURST / 2 + RATE / 2 * during.elapsed + BURST, during.statuses
        assert down["fallback_admitted"] > 0
    else:
        assert during.statuses[503] > 0
        assert set(during.codes) <= {"storage_unavailable", "rate_limited"}
    assert recovered, "the limiter never leased again after Azurite came back"
    assert healed["storage_healthy"] is True
    assert after.admitted > 0 and set(after.statuses) <= {200, 429}
    assert healed["leases"] > down["leases"]


def test_503_when_closed_carries_retry_after_and_json(backends, azurite, log_dir):
    env = limited_env(backends, azurite, RATE_LIMIT_FAILURE_MODE="closed",
                      RATE_LIMIT_STORAGE_TIMEOUT_S="0.3")
    azurite.stop()
    gateway = start_gateway(log_dir, "gw-closed-cold", env)
    try:
        response = httpx.post(f"{gateway.url}/infer/python", json={"prompt": "x"}, timeout=10)
    finally:
        gateway.stop()
    assert response.status_code == 503
    body = json.loads(response.text)
    assert body["error"]["code"] == "storage_unavailable"
    assert math.isfinite(int(response.headers["retry-after"]))
    assert "127.0.0.1" not in response.text
