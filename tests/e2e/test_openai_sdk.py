"""The real OpenAI SDK, unmodified, against the gateway in front of the simulator."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

from .conftest import start_gateway

pytest_plugins = ["tests.e2e.conftest_openai"]  # fixtures openai_gateway, openai_env

pytestmark = pytest.mark.e2e
MODEL, TOKEN_MS = "sim-small", 30  # as routed and configured by conftest_openai
TEXT = "one two three four five six seven eight nine ten"
MESSAGES = [{"role": "user", "content": TEXT}]
PROMPT_TOKENS = -(-len(TEXT) // 4) + 4  # the simulators' count, and the gateway's estimate


def client(gateway, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", timeout=20, **kw)


def token_stats(gateway) -> dict:
    return httpx.get(f"{gateway.url}/_gateway/stats", timeout=5).json()["tokens"]


def test_plain_completion(openai_gateway):
    raw = client(openai_gateway, max_retries=0).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=12)
    answer = raw.parse()
    assert answer.choices[0].message.content.startswith("echo: one two")
    assert answer.usage.completion_tokens == 12
    assert raw.headers["x-ratelimit-limit-tokens"] == "200000"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) >= 0
    assert raw.headers["x-request-id"]


def test_completions_embeddings_and_models(openai_gateway):
    sdk = client(openai_gateway, max_retries=0)
    assert sdk.completions.create(model=MODEL, prompt="a b c", max_tokens=3).usage.total_tokens
    vectors = sdk.embeddings.create(model=MODEL, input=["x", "y"])
    assert len(vectors.data) == 2 and vectors.usage.prompt_tokens == 2
    assert MODEL in {m.id for m in sdk.models.list()}
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_stream_without_usage_never_shows_the_usage_chunk(openai_gateway):
    chunks = list(client(openai_gateway, max_retries=0).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True))
    assert len(chunks) == 17  # 16 tokens and the finish chunk; the usage chunk was removed
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith("echo: one")


def test_stream_with_include_usage_ends_with_the_usage(openai_gateway):
    chunks = list(client(openai_gateway, max_retries=0).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS


def test_first_chunk_arrives_while_the_backend_holds_the_rest(openai_gateway, openai_sim):
    # The simulator sends its first token event, then holds the rest until released: a gateway
    # that buffered would deliver nothing until the hold timed out, and the release would then
    # find no stream held. No clock is read.
    key = uuid.uuid4().hex
    chunks = iter(client(openai_gateway, max_retries=0).chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers={"x-sim-hold-key": key}))
    first = next(chunks)
    released = httpx.post(f"{openai_sim.url}/sim/release/{key}").json()
    rest = list(chunks)
    assert first.choices[0].delta.content and released == {"held": True}
    assert len(rest) == 16 and rest[-1].choices[0].finish_reason is not None
    assert httpx.post(f"{openai_sim.url}/sim/release/{key}").json() == {"held": False}


def test_backend_429_is_retried_by_the_sdk_after_retry_after(openai_gateway):
    # The gateway itself retries a 429 once after its Retry-After (RETRY_MAX_ATTEMPTS=2), so
    # three 429s in a row reach the SDK as one, which it retries in turn.
    key = uuid.uuid4().hex
    raw = client(openai_gateway, max_retries=2).chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=4,
        extra_headers={"x-sim-error": "429", "x-sim-error-times": "3", "x-sim-error-key": key})
    assert raw.retries_taken == 1 and raw.parse().usage.completion_tokens == 4


def test_gateway_token_limit_429_then_a_successful_retry(openai_env, log_dir):
    # 6000 tokens per minute (100 per second): a stream holding 5,800 leaves too few for the
    # next request until the bucket refills about a second later; the SDK waits and retries.
    gateway = start_gateway(log_dir, "openai-tpm", openai_env(CLIENT_TPM="6000"))
    try:
        sdk = client(gateway, max_retries=0)
        held = sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                           max_tokens=5800 - PROMPT_TOKENS)
        next(iter(held))  # reserved and streaming: not settled yet
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=300)
        error = caught.value
        assert error.code == "rate_limit_exceeded" and error.type == "tokens"
        assert int(error.response.headers["retry-after-ms"]) > 0
        raw = client(gateway, max_retries=3).chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=300)
        assert raw.retries_taken >= 1 and raw.parse().usage.completion_tokens == 16
        held.close()
    finally:
        gateway.stop()


def test_token_counters_reconcile_with_the_backends_usage(openai_env, log_dir):
    gateway = start_gateway(log_dir, "openai-ledger", openai_env())
    try:
        sdk = client(gateway, max_retries=0)
        plain = sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5).usage
        streamed = list(sdk.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
        usage = streamed[-1].usage
        list(sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
        stats = token_stats(gateway)
    finally:
        gateway.stop()
    counted = stats["by_client"]["ip:127.0.0.1"][MODEL]
    assert counted == {"requests": 3,
                       "prompt_tokens": plain.prompt_tokens + 2 * usage.prompt_tokens,
                       "completion_tokens": plain.completion_tokens + 2 * usage.completion_tokens}
    totals = stats["totals"]
    charged = totals["reserved_tokens"] - totals["refunded_tokens"] + totals["extra_charged_tokens"]
    assert charged == totals["prompt_tokens"] + totals["completion_tokens"]


def test_a_client_that_leaves_mid_stream_ends_the_upstream_and_keeps_the_charge(openai_env,
                                                                                log_dir):
    gateway = start_gateway(log_dir, "openai-leave", openai_env())
    try:
        stream = client(gateway, max_retries=0).chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, max_tokens=16)
        next(iter(stream))
        stream.close()
        deadline = time.monotonic() + 5
        while token_stats(gateway)["totals"]["unreconciled_requests"] == 0:
            assert time.monotonic() < deadline, "the gateway never noticed the client left"
            time.sleep(0.05)
        assert token_stats(gateway)["totals"]["kept_tokens"] == PROMPT_TOKENS + 16
    finally:
        gateway.stop()
