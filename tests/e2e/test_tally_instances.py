"""Tally mode (RATE_LIMIT_SYNC=tally) across real gateway processes on one Azurite: a shared
limit within the stated bound for a few storage calls per period, Azurite stopping in both
failure modes, and token limits refunded far from binding."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import httpx
import pytest

from function_app.ratelimit.limits import Limit
from function_app.ratelimit.tally import tally
from tests.support.azurite import Azurite, azurite_fixture
from tests.support.bounds import tally_admitted_bound
from tests.support.drive import drive

from .conftest import start_gateway
from .test_token_limits_azurite import (  # noqa: F401 (chat_backend: a fixture)
    MODEL,
    WRONG_KEY,
    chat_backend,
    send,
)
from .test_token_limits_azurite import limiter_stats as stats

pytestmark = pytest.mark.e2e

RATE, BURST, PERIOD = 100.0, 100.0, 0.5


def tally_env(backends, azurite: Azurite, **extra: str) -> dict[str, str]:
    return {"PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
            "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
            "RATE_LIMIT_SYNC": "tally", "RATE_LIMIT_TALLY_PERIOD_S": str(PERIOD),
            "GLOBAL_RPS": str(RATE), "GLOBAL_BURST": str(BURST), "CLIENT_RPS": "0", **extra}


azurite = azurite_fixture("function")  # a test stops and starts it


def test_three_tally_instances_share_a_limit_within_the_bound_for_calls_per_period(
        backends, azurite, log_dir):
    env = tally_env(backends, azurite, RATE_LIMIT_EXPECTED_INSTANCES="3")
    gateways = [start_gateway(log_dir, f"gw-tally-{i}", env) for i in range(3)]
    try:
        run = asyncio.run(drive([f"{g.url}/infer/python" for g in gateways], seconds=8,
                                workers=24, check_headers=True))
        counters = [stats(g.url) for g in gateways]
    finally:
        for gateway in gateways:
            gateway.stop()
    bound = tally_admitted_bound(Limit(RATE, BURST), 3, 1, PERIOD, run.elapsed, 3, 3)
    assert set(run.statuses) == {200, 429}, run.statuses
    assert set(run.codes) == {"rate_limited"}
    assert run.missing_headers == 0
    assert run.admitted <= bound, (run.admitted, bound)
    assert run.admitted >= 0.8 * RATE * run.elapsed, (run.admitted, run.elapsed)
    assert all(c["admitted"] > 0 for c in counters)
    assert all(c["decisions_without_storage"] == 0 for c in counters), [
        {k: v for k, v in c.items() if v and not k.startswith("lease")} for c in counters]
    periods = run.elapsed / PERIOD + 4
    trips = sum(c["storage_round_trips"] for c in counters)
    # Per period: each instance writes its row and reads the summary, the aggregator queries
    # its one group and writes: about 8, whatever the number of requests (thousands here).
    assert trips <= periods * 8 + 12, (trips, periods)
    # Not compared with the number of requests: that depends on how fast this machine is
    # (storage calls per request are a benchmark figure: load/bench_ratelimit.py --sync tally).
    aggregations = sum(c["tally_aggregations"] for c in counters)
    assert aggregations >= run.elapsed / PERIOD - 4, (aggregations, run.elapsed)
    assert sum(c["tally_takeovers"] for c in counters) == 1  # one aggregator, never contested


def wait_until_synced(gateway_url: str, url: list[str], patience_s: float = 60.0) -> bool:
    """Drive light traffic until a whole drive is decided on a fresh view (no decision in the
    failure mode) with storage healthy: a condition, not a clock."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        before = stats(gateway_url)["decisions_without_storage"]
        asyncio.run(drive(url, seconds=0.3, workers=2, pause_s=0.05))
        now = stats(gateway_url)
        if now["storage_healthy"] and now["decisions_without_storage"] == before:
            return True
    return False


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_tally_follows_the_failure_mode_while_azurite_is_down_and_recovers(
        backends, azurite, log_dir, mode):
    env = tally_env(backends, azurite, RATE_LIMIT_FAILURE_MODE=mode,
                    RATE_LIMIT_STORAGE_TIMEOUT_S="0.3", RATE_LIMIT_EXPECTED_INSTANCES="2")
    gateway = start_gateway(log_dir, f"gw-tally-fault-{mode}", env)
    url = [f"{gateway.url}/infer/python"]
    try:
        before = asyncio.run(drive(url, seconds=2, workers=4, pause_s=0.02))
        azurite.stop()
        # Longer than tally.STALE_PERIODS periods: the last view is too old to decide on.
        during = asyncio.run(drive(url, seconds=tally.STALE_PERIODS * PERIOD + 2, workers=4,
                                   pause_s=0.02))
        down = stats(gateway.url)
        azurite.start()
        recovered = wait_until_synced(gateway.url, url)
        healed = stats(gateway.url)
        after = asyncio.run(drive(url, seconds=2, workers=4, pause_s=0.02))
        final = stats(gateway.url)
    finally:
        gateway.stop()
    assert before.admitted > 0 and set(before.statuses) <= {200, 429}
    assert 500 not in during.statuses and "connection_error" not in during.statuses
    assert down["decisions_without_storage"] > 0 and not down["storage_healthy"]
    if mode == "open":
        assert set(during.statuses) <= {200, 429}
        assert down["fallback_admitted"] > 0
        # Before the view went stale, its share (whole, alone); then rate / expected locally.
        limit = BURST + RATE * tally.STALE_PERIODS * PERIOD * 2 + BURST / 2 + RATE / 2 * (
            during.elapsed)
        assert during.admitted <= limit, (during.admitted, limit)
    else:
        assert during.statuses[503] > 0
        assert set(during.codes) <= {"storage_unavailable", "rate_limited"}
    assert recovered, "the limiter never synced again after Azurite came back"
    assert healed["storage_healthy"] is True
    assert after.admitted > 0 and set(after.statuses) <= {200, 429}
    # Decided on a fresh view again, not in the failure mode.
    assert final["decisions_without_storage"] == healed["decisions_without_storage"]


@pytest.mark.parametrize("key", ["healthy", "refused"])
def test_tally_token_limits_far_from_binding_never_refuse_and_refunds_come_back(
        chat_backend, azurite, log_dir, key):  # noqa: F811
    connection = azurite.connection_string
    if key == "refused":
        connection = re.sub(r"AccountKey=[^;]+", f"AccountKey={WRONG_KEY}", connection)
    env = {"MODEL_ROUTES": f'{{"{MODEL}": "{chat_backend.url}"}}',
           "PY_SERVICE_URL": chat_backend.url, "NODE_SERVICE_URL": chat_backend.url,
           "RATE_LIMIT_STORAGE_CONNECTION": connection, "CLIENT_TPM": "200000",
           "RATE_LIMIT_SYNC": "tally", "RATE_LIMIT_EXPECTED_INSTANCES": "3",
           "GLOBAL_RPS": "1000000", "GLOBAL_BURST": "1000000", "CLIENT_RPS": "1000000",
           "CLIENT_BURST": "1000000"}
    gateways = [start_gateway(log_dir, f"gw-tally-tpm-{key}-{i}", env) for i in range(3)]
    # 1,030 reserved per completion, 21 used: 900 completions reserve 4.6 times what one
    # instance's share (or a refused key's safe share, 200,000 / 3) holds; refunds make it fit.
    total = 900
    try:
        statuses = asyncio.run(send([g.url for g in gateways], total, 32))
        counters = [stats(g.url) for g in gateways]
        health = [httpx.get(f"{g.url}/healthz", timeout=10).json() for g in gateways]
    finally:
        for g in gateways:
            g.stop()
    assert statuses == Counter({200: total}), (statuses, counters)
    assert sum(c["refunded_tokens"] for c in counters) > 0.9 * total * 1000
    trips = sum(c["storage_round_trips"] for c in counters)
    if key == "healthy":
        assert all(h["limiter"]["storage"]["state"] == "ok" for h in health)
        assert trips <= 40, trips  # a few syncs per instance, not a call per completion
    else:
        assert all(c["decisions_without_storage"] > 0 for c in counters)
        assert all(h["limiter"]["storage"]["state"] == "refused" for h in health)
