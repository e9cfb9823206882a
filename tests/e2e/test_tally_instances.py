"""Tally mode (RATE_LIMIT_SYNC=tally) across real gateway processes on one Azurite: a shared
limit within the stated bound for a few storage calls per period, Azurite stopping in both
failure modes, and token limits refunded far from binding."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import httpx
import pytest

from function_app.ratelimit.limits import Limit
from function_app.ratelimit.tally import tally
from tests.support.azurite import azurite_fixture
from tests.support.bounds import tally_admitted_bound

from .conftest import start_gateway
from .shared_limit import (
    BURST,
    RATE,
    assert_failure_mode,
    assert_shared_within,
    light,
    limit_env,
    recovers,
    run_three,
    stop_azurite_under_traffic,
)
from .shared_limit import limiter_stats as stats
from .test_token_limits_azurite import (  # noqa: F401 (chat_backend: a fixture)
    MODEL,
    WRONG_KEY,
    chat_backend,
    send,
)

pytestmark = pytest.mark.e2e

PERIOD = 0.5


def tally_env(backends, azurite, **extra: str) -> dict[str, str]:
    return limit_env(backends, azurite, RATE_LIMIT_SYNC="tally",
                     RATE_LIMIT_TALLY_PERIOD_S=str(PERIOD), **extra)


azurite = azurite_fixture("function")  # a test stops and starts it


def test_three_tally_instances_share_a_limit_within_the_bound_for_calls_per_period(
        backends, azurite, log_dir):
    env = tally_env(backends, azurite, RATE_LIMIT_EXPECTED_INSTANCES="3")
    run, counters = run_three(log_dir, "gw-tally", env, seconds=8)
    bound = tally_admitted_bound(Limit(RATE, BURST), 3, 1, PERIOD, run.elapsed, 3, 3)
    assert_shared_within(run, counters, bound)
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


def synced(was: dict, now: dict) -> bool:
    """A whole drive decided on a fresh view (no decision in the failure mode), storage up."""
    return now["storage_healthy"] and now["decisions_without_storage"] == \
        was["decisions_without_storage"]


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_tally_follows_the_failure_mode_while_azurite_is_down_and_recovers(
        backends, azurite, log_dir, mode):
    env = tally_env(backends, azurite, RATE_LIMIT_FAILURE_MODE=mode,
                    RATE_LIMIT_STORAGE_TIMEOUT_S="0.3", RATE_LIMIT_EXPECTED_INSTANCES="2")
    gateway = start_gateway(log_dir, f"gw-tally-fault-{mode}", env)
    try:
        # Longer than tally.STALE_PERIODS periods: the last view is too old to decide on.
        outage = stop_azurite_under_traffic(gateway.url, azurite,
                                            down_s=tally.STALE_PERIODS * PERIOD + 2)
        recovered = recovers(gateway.url, synced, drive_s=0.3)
        healed = stats(gateway.url)
        after = light([f"{gateway.url}/infer/python"], 2)
        final = stats(gateway.url)
    finally:
        gateway.stop()
    # Open: before the view went stale, its share (whole, alone); then rate / expected locally.
    assert_failure_mode(outage, mode, BURST + RATE * tally.STALE_PERIODS * PERIOD * 2 + BURST / 2
                        + RATE / 2 * outage.during.elapsed)
    assert not outage.down["storage_healthy"]
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
