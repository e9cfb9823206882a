"""Chaos: a PTU-like deployment answers 429 with retry-after-ms; three gateway instances on one
Azurite spill over to the pay-as-you-go deployment with no client error, none sends to the PTU
before its time, and the PTU takes traffic back after it."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.support.azure_sim import API_VERSION, MODEL, PTU, azure_env, seen, throttle
from tests.support.waiting import poll_until

from .conftest import start_gateway

pytest_plugins = ["tests.e2e.conftest_azure"]
pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "spill"}]
HOLD_S = 5.0


def ask(gateway) -> str:
    """One chat completion through the AzureOpenAI SDK (no SDK retry); who served it."""
    client = openai.AzureOpenAI(azure_endpoint=gateway.url, api_key="client-key",
                                api_version=API_VERSION, max_retries=0, timeout=20)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES,
                                                           max_tokens=2)
    assert raw.status_code == 200  # any client error raises before this
    return raw.headers["x-gateway-backend"]


def ptu_breaker(gateway) -> str | None:
    """How `gateway` sees the PTU deployment's breaker (closed, open, half_open)."""
    stats = httpx.get(f"{gateway.url}/_gateway/stats", timeout=5).json()
    return stats["routing"]["breakers"]["states"].get("ptu")


def test_ptu_429_spills_to_priority_1_and_is_not_asked_again_before_its_time(
        azure_sim, azurite, log_dir):
    env = azure_env(azure_sim, RATE_LIMIT_STORAGE_CONNECTION=azurite.connection_string,
                    BREAKER_CACHE_S="0.2")
    gateways = [start_gateway(log_dir, f"azure-chaos-{i}", env) for i in range(3)]
    try:
        assert {ask(g) for g in gateways} == {"ptu"}  # priority 0 while it has capacity
        start = len(seen(azure_sim))
        until = throttle(azure_sim, PTU, HOLD_S)
        assert ask(gateways[0]) == "payg"  # meets the 429, spills over at once
        # The shared breaker row reaches the other instances.
        poll_until(lambda: all(ptu_breaker(g) == "open" for g in gateways), within_s=10)
        served = []  # (who answered, when the answer was complete)
        while time.time() < until - 1.0:
            served += [(ask(g), time.time()) for g in gateways]
        assert served and {who for who, done in served if done < until} == {"payg"}
        to_ptu = [r for r in seen(azure_sim)[start:] if r["deployment"] == PTU]
        assert to_ptu[0]["status"] == 429  # one 429 for all three, then nothing till its time
        assert all(r["at"] >= until for r in to_ptu[1:])
        # Its time is up on every instance (each holds it from when it heard of the 429).
        poll_until(lambda: all(ptu_breaker(g) != "open" for g in gateways), within_s=HOLD_S + 10)
        after = [ask(g) for g in gateways for _ in range(3)]
        assert after.count("ptu") >= 6  # back on priority 0 on every instance
        late = [r for r in seen(azure_sim)[start:] if r["deployment"] == PTU][1:]
        assert late and all(r["at"] >= until and r["status"] == 200 for r in late)
    finally:
        for gateway in gateways:
            gateway.stop()
