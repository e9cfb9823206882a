"""A spend budget in currency held across three gateway instances on one Azurite, spent by
concurrent streamed requests of the three APIs (chat completions, Responses, Messages), with
cached prompt tokens priced at their own rate; the cost recorded per key, tenant and model."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import openai
import pytest

from tests.support.admin_cli import admin

from .conftest import start_gateway
from .test_tenants_e2e import create_key

pytest_plugins = ["tests.e2e.conftest_openai"]  # fixtures openai_sim, openai_env
pytestmark = pytest.mark.e2e
MODEL = "sim-small"
# Per million tokens: cached prompt tokens at a quarter of the input rate.
PRICE = {"input": 1000.0, "cached_input": 250.0, "output": 4000.0}
BUDGET, MAX_TOKENS, CACHED = 3.0, 20, 4
TEXT = "spend me wisely"  # 4 tokens as input, 8 as a message
# The most one request can be reserved: a prompt of at most 8 (+ framing) and MAX_TOKENS.
MOST = (12 * PRICE["input"] + MAX_TOKENS * PRICE["output"]) / 1e6


@pytest.fixture(scope="module")
def gateways(openai_env, storage_env, log_dir):
    env = openai_env(GATEWAY_AUTH="required", CLIENT_TPM="0", MODEL_TPM="0",
                     GATEWAY_USAGE_FLUSH_S="1", MODEL_PRICES=json.dumps({MODEL: PRICE}),
                     **storage_env)
    procs = [start_gateway(log_dir, f"spend-gateway-{i}", env) for i in range(3)]
    yield procs
    for proc in procs:
        proc.stop()


def cost(prompt: int, cached: int, output: int) -> float:
    return ((prompt - cached) * PRICE["input"] + cached * PRICE["cached_input"]
            + output * PRICE["output"]) / 1e6


def chat(url: str, key: str, headers: dict) -> float:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=20)
    chunks = list(sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": TEXT}], max_tokens=MAX_TOKENS,
        stream=True, stream_options={"include_usage": True}, extra_headers=headers))
    usage = chunks[-1].usage
    return cost(usage.prompt_tokens, 0, usage.completion_tokens)  # the sim caches no chat


def responses(url: str, key: str, headers: dict) -> float:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=20)
    events = list(sdk.responses.create(model=MODEL, input=TEXT, max_output_tokens=MAX_TOKENS,
                                       stream=True, extra_headers=headers))
    usage = events[-1].response.usage
    return cost(usage.input_tokens, usage.input_tokens_details.cached_tokens,
                usage.output_tokens)


def messages(url: str, key: str, headers: dict) -> float:
    sdk = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=20)
    with sdk.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, extra_headers=headers,
                             messages=[{"role": "user", "content": TEXT}]) as stream:
        usage = stream.get_final_message().usage
    cached = usage.cache_read_input_tokens or 0
    return cost(usage.input_tokens + cached, cached, usage.output_tokens)


APIS = (chat, responses, messages)
REFUSED = (openai.RateLimitError, anthropic.RateLimitError)


def refusal_code(exc: Exception) -> str | None:
    body = getattr(exc, "body", None) or {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    return inner.get("code") if isinstance(inner, dict) else None


def test_a_spend_budget_holds_across_three_instances_and_all_three_apis(gateways,
                                                                         storage_env):
    admin(storage_env, "tenants", "set", "spend-team", "--daily-spend", str(BUDGET))
    keys = [create_key(storage_env, "spend-team") for _ in range(2)]

    def worker(index: int) -> tuple[float, list[str]]:
        url, key, spent, codes = gateways[index % 3].url, keys[index % 2], 0.0, []
        for turn in range(200):
            call = APIS[(index + turn) % 3]
            headers = {"x-sim-cached-tokens": str(CACHED)} if turn % 2 else {}
            try:
                spent += call(url, key, headers)
            except REFUSED as exc:
                codes.append(refusal_code(exc))
                if codes[-1] == "budget_exceeded":
                    return spent, codes
        return spent, codes

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(worker, range(6)))
    spent = sum(s for s, _ in results)
    print(f"spent {spent:.4f} of a {BUDGET} budget (bound {BUDGET + 3 * MOST:.4f})")
    assert all(codes and codes[-1] == "budget_exceeded" for _, codes in results), results
    # The bound (docs/SPEND.md): the budget plus one request's reservation per instance.
    assert spent <= BUDGET + 3 * MOST
    # Refunds wait in an instance's pool until it spends them or gives them back when idle.
    assert spent >= BUDGET - 2 * 3 * MOST
    # Every instance priced what the clients priced, cached tokens at their own rate.
    operator = {"authorization": f"Bearer {create_key(storage_env, 'ops', '--operator')}"}
    stats = [httpx.get(f"{g.url}/_gateway/stats", headers=operator, timeout=5).json()["tokens"]
             for g in gateways]
    by_model = sum(s["spend"]["by_model"].get(MODEL, 0.0) for s in stats)
    assert by_model == pytest.approx(spent, abs=1e-5)
    assert sum(s["totals"]["cached_tokens"] for s in stats) > 0
    metrics = httpx.get(f"{gateways[0].url}/metrics", headers=operator, timeout=5).text
    assert 'gateway_spend_total{gen_ai_request_model="sim-small",client=' in metrics


def test_the_cli_shows_the_cost_per_key(gateways, storage_env):
    key = create_key(storage_env, "cli-spend-team")
    spent = responses(gateways[0].url, key, {"x-sim-cached-tokens": str(CACHED)}) + \
        messages(gateways[1].url, key, {})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [line.split() for line in admin(
            storage_env, "tenants", "usage", "cli-spend-team").splitlines()[1:]]
        recorded = sum(float(parts[5]) for parts in lines if len(parts) > 5)
        if recorded == pytest.approx(spent, abs=1e-4):
            break
        time.sleep(0.5)
    assert recorded == pytest.approx(spent, abs=1e-4)
