"""The completion cache on the agents' APIs through the local host and the real worker: the
official anthropic and openai SDKs, unmodified, against the simulator. A hit is told by its
X-Cache header, by the simulator's fresh ids (each answer it makes has a new one) and by the
router's upstream attempts, which a hit does not add to."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from .conftest import start_gateway

pytest_plugins = ["tests.e2e.conftest_openai"]  # fixtures openai_sim, openai_env

pytestmark = pytest.mark.e2e
MODEL = "sim-small"
MESSAGES = [{"role": "user", "content": "cache me if you can"}]


@pytest.fixture(scope="module")
def cache_gateway(openai_env, log_dir):
    proc = start_gateway(log_dir, "agents-cache-gateway", openai_env(
        MODEL_ROUTES=json.dumps({MODEL: openai_env()["PY_SERVICE_URL"]}),
        CACHE_COMPLETIONS="/v1/messages,/v1/responses", RESPONSES_ID_SECRET="e2e-secret"))
    yield proc
    proc.stop()


def attempts(gateway) -> int:
    stats = httpx.get(f"{gateway.url}/_gateway/stats", timeout=5).json()
    return stats["routing"]["totals"]["attempts"]


def claude(gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="sk-ant-test", timeout=20,
                               max_retries=0)


def test_a_repeated_message_is_a_hit_with_the_anthropic_sdk(cache_gateway):
    sdk = claude(cache_gateway)
    first = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=6, messages=MESSAGES)
    before = attempts(cache_gateway)
    second = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=6, messages=MESSAGES)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.parse().id == first.parse().id  # the simulator would have made a new one
    assert second.parse().content[0].text == first.parse().content[0].text
    assert attempts(cache_gateway) == before


def test_a_message_stream_is_replayed_to_the_anthropic_sdk(cache_gateway):
    sdk = claude(cache_gateway)
    asked = {"model": MODEL, "max_tokens": 12, "messages": MESSAGES,
             "system": "stream this one"}
    with sdk.messages.stream(**asked) as stream:
        text = "".join(stream.text_stream)
        first = stream.get_final_message()
    before = attempts(cache_gateway)
    with sdk.messages.stream(**asked) as stream:
        assert stream.response.headers["x-cache"] == "HIT"
        again = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert again == text and final.id == first.id
    assert final.usage.output_tokens == first.usage.output_tokens
    assert attempts(cache_gateway) == before


def test_a_stateless_response_is_a_hit_and_a_stored_one_never(cache_gateway):
    sdk = openai.OpenAI(base_url=f"{cache_gateway.url}/v1", api_key="sk-test", timeout=20,
                        max_retries=0)
    asked = {"model": MODEL, "input": "cache this response", "max_output_tokens": 8}
    first = sdk.responses.with_raw_response.create(**asked, store=False)
    before = attempts(cache_gateway)
    second = sdk.responses.with_raw_response.create(**asked, store=False)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.parse().output_text == first.parse().output_text
    assert attempts(cache_gateway) == before
    stored = sdk.responses.with_raw_response.create(**asked)  # store defaults to true
    assert stored.headers["x-cache"] == "BYPASS"
    assert attempts(cache_gateway) == before + 1
