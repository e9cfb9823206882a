"""Token limits far from binding, on Azurite: no refusals, few storage calls, real usage charged.

Issue #10, section 1, as a new user met it: CLIENT_TPM 200,000 and DEFAULT_MAX_TOKENS 1,024
reserved per small chat completion (8 tokens of real usage), request limits far away. One and
three gateway instances, one client sequential and 32 at once, a healthy key and a wrong one.
With the right key nothing is refused and storage is called rarely; with a wrong key the
gateway says so (log, /healthz) and fails open, charging real usage: refunds come back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections import Counter

import aiohttp
import httpx
import pytest

from scripts.procs import INSTANT, spawn_node

from .conftest import start_gateway
from .shared_limit import limiter_stats

pytestmark = pytest.mark.e2e
MODEL = "sim-node"
CHAT = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()
WRONG_KEY = base64.b64encode(b"not-the-key" * 6).decode()


@pytest.fixture(scope="module")
def chat_backend(log_dir):
    proc = spawn_node("chat-backend", log_dir, INSTANT)
    yield proc
    proc.stop()


async def send(urls: list[str], total: int, workers: int) -> Counter:
    """`total` chat completions spread round-robin over `urls` by `workers` loops."""
    statuses: Counter = Counter()
    queue = iter(range(total))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker() -> None:
            for i in queue:
                async with session.post(f"{urls[i % len(urls)]}/v1/chat/completions", data=CHAT,
                                        headers={"content-type": "application/json"}) as r:
                    await r.read()
                    statuses[r.status] += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return statuses


@pytest.mark.parametrize("key", ["healthy", "refused"])
@pytest.mark.parametrize("instances", [1, 3])
@pytest.mark.parametrize("workers", [1, 32])
def test_a_client_far_under_its_token_limit_is_never_refused(
        chat_backend, azurite, log_dir, key, instances, workers):
    connection = azurite.connection_string
    if key == "refused":
        connection = re.sub(r"AccountKey=[^;]+", f"AccountKey={WRONG_KEY}", connection)
    env = {"MODEL_ROUTES": json.dumps({MODEL: chat_backend.url}),
           "PY_SERVICE_URL": chat_backend.url, "NODE_SERVICE_URL": chat_backend.url,
           "RATE_LIMIT_STORAGE_CONNECTION": connection, "CLIENT_TPM": "200000",
           "GLOBAL_RPS": "1000000", "GLOBAL_BURST": "1000000", "CLIENT_RPS": "1000000",
           "CLIENT_BURST": "1000000"}
    gateways = [start_gateway(log_dir, f"gw-tpm-{key}-{instances}-{workers}-{i}", env)
                for i in range(instances)]
    # Reservations (1,030 each) far beyond the local safe share a refused key leaves (50,000 =
    # 200,000 / RATE_LIMIT_EXPECTED_INSTANCES), real usage (21 each) and 32 in flight within it.
    total = 150 if workers == 1 else (1200 if key == "healthy" else 400)
    try:
        statuses = asyncio.run(send([g.url for g in gateways], total, workers))
        counters = [limiter_stats(g.url) for g in gateways]
        tokens = [httpx.get(f"{g.url}/_gateway/stats", timeout=5).json()["tokens"]["totals"]
                  for g in gateways]
        health = [httpx.get(f"{g.url}/healthz", timeout=10).json() for g in gateways]
        logs = [g.log.read_text(errors="replace") for g in gateways]
    finally:
        for g in gateways:
            g.stop()
    why = [{k: c[k] for k in ("denied", "contention_denied", "conflicts", "leases", "lease_rounds")}
           for c in counters]  # what refused, readable in a failure (the whole stats truncate)
    assert statuses == Counter({200: total}), (statuses, why, tokens)
    trips = sum(c["storage_round_trips"] for c in counters)
    if key == "healthy":
        assert all(h["ok"] and h["limiter"]["storage"]["state"] == "ok" for h in health)
        # One instance: leases amortised (the bench measures the 0.05 target on longer runs);
        # sequential runs are too short to amortise the first leases. Several instances still
        # contend for one row per key (issue #10 section 2, not done): no figure asserted.
        if workers > 1 and instances == 1:
            assert trips / total <= 0.1, (trips, total)
    else:
        assert all(c["decisions_without_storage"] > 0 for c in counters)
        assert all(not h["ok"] and h["limiter"]["storage"]["state"] == "refused"
                   for h in health)
        assert all("REFUSED" in text and WRONG_KEY not in text for text in logs)
        assert all(WRONG_KEY not in json.dumps(h) for h in health)
