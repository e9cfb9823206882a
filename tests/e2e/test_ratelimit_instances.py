"""Rate limits shared by several gateway processes over one Azurite, and Azurite failing."""

import json
import math

import httpx
import pytest

from tests.support.azurite import azurite_fixture

from .conftest import start_gateway
from .shared_limit import (
    BURST,
    RATE,
    assert_failure_mode,
    assert_shared_within,
    light,
    limit_env,
    limiter_stats,
    recovers,
    run_three,
    stop_azurite_under_traffic,
)

pytestmark = pytest.mark.e2e

LEASE_S = 0.25


def harmonic(n: int) -> float:
    return sum(1 / k for k in range(1, n + 1))


def overshoot_bound(instances: int, seconds: float) -> float:
    """The README's bound: burst + rate*T + rate*lease_s*H(N) + N*cost (cost 1)."""
    return BURST + RATE * seconds + RATE * LEASE_S * harmonic(instances) + instances


def limited_env(backends, azurite, **extra: str) -> dict[str, str]:
    return limit_env(backends, azurite, RATE_LIMIT_LEASE_S=str(LEASE_S), **extra)


azurite = azurite_fixture("function")  # tests stop and start it


def test_three_instances_admit_the_global_limit_within_the_stated_bound(backends, azurite,
                                                                       log_dir):
    run, counters = run_three(log_dir, "gw-shared", limited_env(backends, azurite), seconds=6)
    assert_shared_within(run, counters, overshoot_bound(3, run.elapsed))
    round_trips = sum(c["storage_round_trips"] for c in counters)
    assert round_trips < sum(run.statuses.values()) / 4  # far from a storage call per request


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_azurite_stopping_follows_the_failure_mode_and_recovers(backends, azurite, log_dir,
                                                                mode):
    env = limited_env(backends, azurite, RATE_LIMIT_FAILURE_MODE=mode,
                      RATE_LIMIT_STORAGE_TIMEOUT_S="0.3", RATE_LIMIT_EXPECTED_INSTANCES="2")
    gateway = start_gateway(log_dir, f"gw-fault-{mode}", env)
    try:
        outage = stop_azurite_under_traffic(gateway.url, azurite, down_s=4)
        leases = outage.down["leases"]
        recovered = recovers(gateway.url, lambda _, now: now["storage_healthy"]
                             and now["leases"] > leases, drive_s=0.2)
        after = light([f"{gateway.url}/infer/python"], 2)
        healed = limiter_stats(gateway.url)
    finally:
        gateway.stop()
    # Open: local safe capacity, rate / expected instances plus its burst, over the outage.
    assert_failure_mode(outage, mode, BURST / 2 + RATE / 2 * outage.during.elapsed + BURST)
    assert recovered, "the limiter never leased again after Azurite came back"
    assert healed["storage_healthy"] is True
    assert after.admitted > 0 and set(after.statuses) <= {200, 429}
    assert healed["leases"] > leases


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
