"""Azure OpenAI through the local host and the real worker: the OpenAI and AzureOpenAI SDKs,
streamed and not, reach the local Azure OpenAI with a token the gateway obtained through
azure-identity's managed-identity code path, across token expiries; no client key arrives."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.support.azure_sim import API_VERSION, MODEL, PTU, TOKEN_LIFETIME_S, azure_env, seen

from .conftest import start_gateway

pytest_plugins = ["tests.e2e.conftest_azure"]
pytestmark = pytest.mark.e2e
MESSAGES = [{"role": "user", "content": "one two three"}]
CLIENT_KEY = "sk-client-own-key-7d1f"


@pytest.fixture(scope="module")
def gateway(azure_sim, log_dir):
    proc = start_gateway(log_dir, "azure-gateway", azure_env(azure_sim))
    yield proc
    proc.stop()


def openai_client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0,
                         timeout=20)


def azure_client(gateway) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=gateway.url, api_key=CLIENT_KEY,
                              api_version=API_VERSION, max_retries=0, timeout=20)


def since(sim, start: int) -> list[dict]:
    return seen(sim)[start:]


def assert_gateway_credentials_only(records: list[dict]) -> None:
    assert records
    for record in records:
        assert record["auth"] == "bearer" and record["status"] == 200, record
        assert record["credentials"] == ["authorization"], record  # no api-key, x-api-key
        assert record["oid"] == "system-assigned"  # the gateway's identity, not the client


def test_both_sdks_streamed_and_not_reach_azure_with_the_gateways_token(gateway, azure_sim):
    start = len(seen(azure_sim))
    plain = openai_client(gateway).chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4)
    assert plain.choices[0].message.content.startswith("echo: one")
    streamed = list(openai_client(gateway).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert streamed[-1].usage.completion_tokens == 16
    azure = azure_client(gateway).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=4)
    answer = azure.parse()
    assert answer.choices[0].message.content.startswith("echo: one")
    assert azure.headers["x-gateway-backend"] == "ptu"
    assert azure.headers["x-ratelimit-remaining-tokens"]  # the gateway's own, on top
    assert answer.usage.prompt_tokens_details.cached_tokens == answer.usage.prompt_tokens
    text = "".join(c.choices[0].delta.content or "" for c in azure_client(
        gateway).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
                   if c.choices)
    assert text.startswith("echo: one two")
    vectors = azure_client(gateway).embeddings.create(model=MODEL, input=["a", "b"])
    assert len(vectors.data) == 2
    records = since(azure_sim, start)
    assert len(records) == 5 and {r["deployment"] for r in records} == {PTU}
    assert_gateway_credentials_only(records)


def test_the_async_azure_client_streams(gateway, azure_sim):
    async def run() -> str:
        client = openai.AsyncAzureOpenAI(azure_endpoint=gateway.url, api_key=CLIENT_KEY,
                                         api_version=API_VERSION, max_retries=0, timeout=20)
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                      stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return "".join(parts)

    start = len(seen(azure_sim))
    assert asyncio.run(run()).startswith("echo: one two")
    assert_gateway_credentials_only(since(azure_sim, start))


def test_tokens_are_refreshed_across_expiry_without_a_failed_request(gateway, azure_sim):
    start, client = len(seen(azure_sim)), azure_client(gateway)
    ends = time.monotonic() + 3 * TOKEN_LIFETIME_S
    answered = 0
    while time.monotonic() < ends:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
        answered += 1
        time.sleep(0.1)
    records = since(azure_sim, start)
    assert len(records) == answered  # not one 401 retried behind the client's back
    assert_gateway_credentials_only(records)
    tokens = {r["iat"] for r in records}
    assert len(tokens) >= 3  # a new token for each lifetime, fetched before the old expired
    assert all(r["at"] < r["exp"] for r in records)


def test_a_content_filter_refusal_passes_through_and_is_not_retried(gateway, azure_sim):
    start = len(seen(azure_sim))
    with pytest.raises(openai.BadRequestError) as caught:
        azure_client(gateway).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "tell me a forbidden-topic"}])
    assert caught.value.code == "content_filter"
    body = caught.value.body
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert len(since(azure_sim, start)) == 1


def test_an_azure_path_without_api_version_is_refused_before_any_backend(gateway, azure_sim):
    start = len(seen(azure_sim))
    answer = httpx.post(f"{gateway.url}/openai/deployments/{MODEL}/chat/completions",
                        json={"messages": MESSAGES}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "missing_api_version"
    assert answer.json()["error"]["request_id"]
    assert since(azure_sim, start) == []


def test_a_revoked_token_is_replaced_after_one_401_without_the_client_seeing_it(
        gateway, azure_sim):
    client = azure_client(gateway)
    # The tokens live a few seconds: on a slow machine the gateway may renew its token on
    # schedule between the revocation and the next request, which then meets no 401. Try again
    # until a request does meet one (each try revokes what the gateway then holds).
    for _ in range(5):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
        start = len(seen(azure_sim))
        httpx.post(f"{azure_sim.url}/_sim/revoke", timeout=5)
        answer = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
        assert answer.choices[0].message.content
        records = since(azure_sim, start)
        if records[0]["status"] == 401:
            break
        assert [r["status"] for r in records] == [200]  # renewed on schedule: a fresh token
    refused, accepted = records
    assert refused["status"] == 401 and accepted["status"] == 200
    assert accepted["iat"] > refused["iat"]  # a new token, from azure-identity's endpoint
    assert_gateway_credentials_only([accepted])
