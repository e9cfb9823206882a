"""Gateway API keys end to end: the admin CLI and three gateways on one Azurite, the OpenAI SDK
with a gateway key, revocation reaching every instance, a tenant's budget held across them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.support import admin_cli
from tests.support.admin_cli import admin

from .conftest import start_gateway

pytest_plugins = ["tests.e2e.conftest_openai"]  # fixture openai_env
pytestmark = pytest.mark.e2e
MODEL = "sim-small"  # as routed by conftest_openai
MESSAGES = [{"role": "user", "content": "budget"}]  # 6 prompt tokens; the sim answers 16


CREATED: list[str] = []  # every key this module made, for the log check at the end


def create_key(storage_env, tenant: str, *limits: str) -> str:
    key = admin_cli.create_key(storage_env, tenant, *limits)
    CREATED.append(key)
    return key


@pytest.fixture(scope="module")
def gateways(openai_env, storage_env, log_dir):
    env = openai_env(GATEWAY_AUTH="required", CLIENT_TPM="0", MODEL_TPM="0", **storage_env)
    procs = [start_gateway(log_dir, f"tenant-gateway-{i}", env) for i in range(3)]
    yield procs
    for proc in procs:
        proc.stop()


def sdk(gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=20)


def test_openai_sdk_works_with_a_gateway_key_and_is_refused_without(gateways, storage_env):
    key = create_key(storage_env, "sdk-team", "--models", MODEL)
    answer = sdk(gateways[0], key).chat.completions.create(model=MODEL, messages=MESSAGES,
                                                           max_tokens=20)
    assert answer.usage.completion_tokens == 16
    with pytest.raises(openai.PermissionDeniedError) as denied:
        sdk(gateways[0], key).chat.completions.create(model="sim-python", messages=MESSAGES)
    assert denied.value.code == "model_not_allowed" and key not in str(denied.value)
    with pytest.raises(openai.AuthenticationError):
        sdk(gateways[0], "sk-not-a-gateway-key").models.list()
    plain = httpx.post(f"{gateways[1].url}/infer/python", json={}, timeout=10)
    assert plain.status_code == 401 and plain.json()["error"]["code"] == "invalid_api_key"


def test_revocation_by_the_cli_reaches_every_instance(gateways, storage_env):
    key = create_key(storage_env, "revoke-team")
    for gateway in gateways:  # every instance has the key cached
        assert sdk(gateway, key).models.list().data
    admin(storage_env, "keys", "revoke", key[:11])
    pending = set(range(len(gateways)))
    deadline = time.monotonic() + 30  # the promise is 5 s; load/bench_tenants.py measures it
    while pending and time.monotonic() < deadline:
        for i in list(pending):
            reply = httpx.get(f"{gateways[i].url}/v1/models", timeout=5,
                              headers={"authorization": f"Bearer {key}"})
            if reply.status_code == 401:
                assert "revoked" in reply.json()["error"]["message"]
                pending.discard(i)
        time.sleep(0.1)
    assert not pending


def test_a_tenants_daily_budget_holds_across_three_instances(gateways, storage_env):
    budget, max_tokens = 1500, 20
    admin(storage_env, "tenants", "set", "budget-team", "--daily-tokens", str(budget))
    keys = [create_key(storage_env, "budget-team") for _ in range(2)]

    def spend(worker: int) -> tuple[int, list[str]]:
        client = sdk(gateways[worker % 3], keys[worker % 2])
        used, codes = 0, []
        for _ in range(200):
            try:
                answer = client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                        max_tokens=max_tokens)
                used += answer.usage.total_tokens
            except openai.RateLimitError as exc:
                codes.append(exc.code)
                if exc.code == "budget_exceeded":
                    return used, codes
        return used, codes

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(spend, range(6)))
    used = sum(u for u, _ in results)
    assert all(codes and codes[-1] == "budget_exceeded" for _, codes in results)
    # The limiter's bound for a rate-0 bucket: budget + one request's estimate per instance.
    estimate = 6 + max_tokens + 10  # prompt, max_tokens, generous framing overhead
    assert used <= budget + 3 * estimate
    # Refunds wait in an instance's pool until it spends them or gives them back when idle.
    assert used >= budget - 2 * 3 * estimate
    usage = admin(storage_env, "keys", "list", "--tenant", "budget-team")
    assert "budget-team" in usage and all(k not in usage for k in keys)


def test_no_key_reaches_a_gateway_or_backend_log(gateways, storage_env, openai_sim):
    key = create_key(storage_env, "log-team")
    httpx.get(f"{gateways[2].url}/v1/models", headers={"api-key": key}, timeout=5)
    admin(storage_env, "keys", "revoke", key)
    httpx.get(f"{gateways[2].url}/v1/models", headers={"api-key": key}, timeout=5)
    logs = [proc.log.read_text() for proc in (*gateways, openai_sim)]
    assert len(CREATED) >= 5  # one from each test above, two for the budget
    assert not [k for k in CREATED for text in logs if k in text]
