"""Token limits shared by gateway processes over one Azurite: reservations, then refunds."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from .conftest import start_gateway

pytest_plugins = ["tests.e2e.conftest_openai"]  # fixture openai_env
pytestmark = pytest.mark.e2e
MODEL = "sim-small"  # as routed by conftest_openai
MESSAGES = [{"role": "user", "content": "shared"}]  # 2 + 4 prompt tokens


def sdk(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0,
                         timeout=20)


def limiter_stats(gateway) -> dict:
    return httpx.get(f"{gateway.url}/_gateway/stats", timeout=5).json()["limiter"]


def test_a_reservation_holds_on_every_instance_and_its_refund_reaches_them(
        openai_env, azurite, log_dir):
    # 600 tokens per minute (10 per second) for the one client, across three instances.
    env = openai_env(CLIENT_TPM="600", MODEL_TPM="0",
                     RATE_LIMIT_STORAGE_CONNECTION=azurite.connection_string)
    first, second, third = (start_gateway(log_dir, f"openai-shared-{i}", env) for i in range(3))
    try:
        held = iter(sdk(first).chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, max_tokens=500))
        next(held)  # 506 tokens reserved on the shared row, not settled while the stream is open
        with pytest.raises(openai.RateLimitError) as caught:
            sdk(second).chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=200)
        assert caught.value.type == "tokens"
        started = time.monotonic()
        list(held)  # 22 tokens used: 484 refunded to the first instance's pool...
        while limiter_stats(first)["returned_tokens"] < 400:  # ...which it gives back when idle
            assert time.monotonic() - started < 8, "the refund never went back to the row"
            time.sleep(0.1)
        answer = sdk(third).chat.completions.create(model=MODEL, messages=MESSAGES,
                                                    max_tokens=200)
        # Without the refund the row would need (206 - 94) / 10 = 11 s more to pay for that.
        assert answer.usage.completion_tokens == 16 and time.monotonic() - started < 8
        assert limiter_stats(first)["refunded_tokens"] == 500 + 6 - 22
    finally:
        for gateway in (first, second, third):
            gateway.stop()
