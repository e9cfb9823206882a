"""The official OpenAI (Responses) and Anthropic (Messages) SDKs, unmodified, through the local
host and the real worker to the simulator: answers, streams, usage, limits and failures."""

from __future__ import annotations

import json
import time
import uuid

import anthropic
import httpx
import openai
import pytest

from scripts.procs import spawn_uvicorn

from .conftest import start_gateway

pytest_plugins = ["tests.e2e.conftest_openai"]  # fixtures openai_sim, openai_env

pytestmark = pytest.mark.e2e
MODEL = "sim-small"
TEXT = "one two three four five six seven eight nine ten"
INPUT_TOKENS = -(-len(TEXT) // 4)  # the simulator's count of a plain string input
MESSAGE_TOKENS = INPUT_TOKENS + 4  # ... and of one message


@pytest.fixture(scope="module")
def agents_gateway(openai_sim, openai_env, log_dir):
    """MODEL and "sim-primary", which fails over to MODEL; one attempt per target, so a
    failure shows as a fallback, not as a retry on the same target."""
    routes = {MODEL: openai_sim.url, "sim-primary": {"backends": [openai_sim.url],
                                                     "fallbacks": [MODEL]}}
    proc = start_gateway(log_dir, "agents-gateway", openai_env(
        MODEL_ROUTES=json.dumps(routes), RETRY_MAX_ATTEMPTS="1",
        RESPONSES_ID_SECRET="e2e-secret"))
    yield proc
    proc.stop()


def oai(gateway, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", timeout=20, **kw)


def claude(gateway, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="sk-ant-test", timeout=20, **kw)


def failing(kind: str, times: int = 1) -> dict[str, str]:
    return {"x-sim-stream-error": kind, "x-sim-error-times": str(times),
            "x-sim-error-key": uuid.uuid4().hex}


def tokens(gateway) -> dict:
    return httpx.get(f"{gateway.url}/_gateway/stats", timeout=5).json()["tokens"]


# --- OpenAI Responses ------------------------------------------------------------------------

def test_response_plain_then_stored_get_items_and_delete(agents_gateway):
    sdk = oai(agents_gateway, max_retries=0)
    raw = sdk.responses.with_raw_response.create(model=MODEL, input=TEXT, max_output_tokens=8)
    answer = raw.parse()
    assert answer.output_text.startswith("echo: one two")
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (INPUT_TOKENS, 8)
    assert raw.headers["x-ratelimit-limit-tokens"] and raw.headers["x-request-id"]
    assert "-gw" in answer.id  # tagged with its backend (docs/APIS.md)
    again = sdk.responses.retrieve(answer.id)
    assert again.id == answer.id and again.output_text == answer.output_text
    items = sdk.responses.input_items.list(answer.id)
    assert [item.content[0].text for item in items.data] == [TEXT]
    sdk.responses.delete(answer.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(answer.id)
    with pytest.raises(openai.NotFoundError):  # not an id the gateway made
        sdk.responses.retrieve("resp_made_up-gw0123456789abcdef")


def test_only_the_responses_apis_own_paths_reach_a_backend(agents_gateway):
    made = oai(agents_gateway, max_retries=0).responses.create(model=MODEL, input=TEXT,
                                                               max_output_tokens=2)
    for method, path, status in (
            ("GET", f"/v1/responses/{made.id}/secrets", 404),
            ("DELETE", f"/v1/responses/{made.id}/input_items", 404),
            ("GET", "/v1/responses/..-gw0123456789abcdef", 404),
            ("GET", "/v1/responses/..%2F..%2Fhealthz-gw0123456789abcdef", 400)):  # invalid_path
        reply = httpx.request(method, agents_gateway.url + path, timeout=5)
        assert reply.status_code == status
        assert reply.json()["error"]["type"] == "invalid_request_error"


def test_previous_response_id_goes_back_to_its_backend(agents_gateway):
    sdk = oai(agents_gateway, max_retries=0)
    first = sdk.responses.create(model=MODEL, input=TEXT, max_output_tokens=4)
    second = sdk.responses.create(model=MODEL, input="and then", max_output_tokens=4,
                                  previous_response_id=first.id)
    assert second.previous_response_id == first.id  # the client sees its own ids only
    reserved = tokens(agents_gateway)["totals"]["reserved_tokens"]
    with pytest.raises(openai.NotFoundError):  # refused before any token is reserved
        sdk.responses.create(model=MODEL, input="x", previous_response_id=f"{first.id}0")
    assert tokens(agents_gateway)["totals"]["reserved_tokens"] == reserved


def test_response_stream_events_in_order_with_usage_and_no_stream_options(agents_gateway):
    # The simulator refuses stream_options on /v1/responses as Azure OpenAI does: a gateway
    # that injected include_usage here would get a 400.
    events = list(oai(agents_gateway, max_retries=0).responses.create(
        model=MODEL, input=TEXT, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and kinds.count("response.output_text.delta") == 16
    final = events[-1].response
    assert final.usage.input_tokens == INPUT_TOKENS and final.usage.output_tokens == 16
    assert events[0].response.id == final.id and "-gw" in final.id


def test_response_failed_before_the_first_byte_falls_back(agents_gateway):
    raw = oai(agents_gateway, max_retries=0).responses.with_raw_response.create(
        model="sim-primary", input=TEXT, stream=True, extra_headers=failing("early"))
    events = list(raw.parse())
    assert raw.headers["x-gateway-backend"] == MODEL  # the fallback model answered
    assert events[-1].type == "response.completed"
    assert events[-1].response.model == MODEL


def test_response_failed_everywhere_is_an_error_status_not_a_200(agents_gateway):
    with pytest.raises(openai.APIStatusError) as caught:
        list(oai(agents_gateway, max_retries=0).responses.create(
            model="sim-primary", input=TEXT, stream=True, extra_headers=failing("early", 5)))
    assert caught.value.status_code == 502 and caught.value.code == "server_error"


def test_response_stream_cut_after_the_first_byte_ends_with_an_error_event(agents_gateway):
    before = tokens(agents_gateway)["totals"]["unreconciled_requests"]
    events = list(oai(agents_gateway, max_retries=0).responses.create(
        model="sim-primary", input=TEXT, stream=True, extra_headers=failing("mid")))
    assert events[-1].type == "error"
    assert "response.output_text.delta" in {e.type for e in events}
    assert events[0].response.model == "sim-primary"  # no fallback once bytes went out
    assert tokens(agents_gateway)["totals"]["unreconciled_requests"] == before


def test_response_backend_429_reaches_the_sdk_in_openai_shape(agents_gateway):
    with pytest.raises(openai.RateLimitError) as caught:
        oai(agents_gateway, max_retries=0).responses.create(
            model=MODEL, input=TEXT, extra_headers={"x-sim-error": "429"})
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"]


# --- Anthropic Messages ----------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": TEXT}]


def test_message_plain_with_usage_and_count_tokens(agents_gateway):
    sdk = claude(agents_gateway, max_retries=0)
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=6, messages=MESSAGES)
    message = raw.parse()
    assert message.content[0].text.startswith("echo: one two")
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (MESSAGE_TOKENS, 6)
    assert raw.headers["anthropic-ratelimit-tokens-limit"]
    count = sdk.messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert count.input_tokens == MESSAGE_TOKENS


def test_message_stream_with_usage_from_start_and_delta(agents_gateway):
    with claude(agents_gateway, max_retries=0).messages.stream(
            model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("echo: one two") and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (MESSAGE_TOKENS, 16)


def test_message_errors_in_anthropic_shape(agents_gateway):
    sdk = claude(agents_gateway, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=4, messages=MESSAGES,
                            extra_headers={"x-sim-error": "429"})
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.messages.create(model="claude-nope", max_tokens=4, messages=MESSAGES)
    assert missing.value.body["error"]["type"] == "not_found_error"
    assert missing.value.request_id  # the gateway's request id, in `request-id`
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(model=MODEL, max_tokens=0, messages=MESSAGES)


def test_message_overloaded_before_the_first_byte_falls_back(agents_gateway):
    with claude(agents_gateway, max_retries=0).messages.stream(
            model="sim-primary", max_tokens=64, messages=MESSAGES,
            extra_headers=failing("early")) as stream:
        final = stream.get_final_message()
    assert final.model == MODEL and final.usage.output_tokens == 16


def test_message_stream_cut_after_the_first_byte_raises_the_error_event(agents_gateway):
    seen = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with claude(agents_gateway, max_retries=0).messages.stream(
                model="sim-primary", max_tokens=64, messages=MESSAGES,
                extra_headers=failing("mid")) as stream:
            seen.extend(stream.text_stream)
    assert seen and caught.value.body["error"]["type"] == "api_error"


def test_both_apis_settle_into_the_token_ledger(agents_gateway):
    before = tokens(agents_gateway)["by_client"].get("ip:127.0.0.1", {}).get(MODEL, {})
    oai(agents_gateway, max_retries=0).responses.create(model=MODEL, input=TEXT,
                                                        max_output_tokens=3)
    claude(agents_gateway, max_retries=0).messages.create(model=MODEL, max_tokens=5,
                                                          messages=MESSAGES)
    after = tokens(agents_gateway)["by_client"]["ip:127.0.0.1"][MODEL]
    assert after["requests"] - before.get("requests", 0) == 2
    assert after["prompt_tokens"] - before.get("prompt_tokens", 0) == INPUT_TOKENS + \
        MESSAGE_TOKENS
    assert after["completion_tokens"] - before.get("completion_tokens", 0) == 8


@pytest.fixture(scope="module")
def slow_sim(log_dir):
    """A simulator taking 8 s per answer (a token every 500 ms)."""
    proc = spawn_uvicorn("slow-sim", log_dir, "python", {"TTFT_MS": "50", "TOKEN_MS": "500"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def slow_gateway(slow_sim, log_dir):
    proc = start_gateway(log_dir, "agents-slow", {
        "MODEL_ROUTES": json.dumps({MODEL: slow_sim.url}), "RATE_LIMIT_STORAGE_CONNECTION": "",
        "UPSTREAM_TIMEOUT_S": "20", "CLIENT_TPM": "6000"})
    yield proc
    proc.stop()


def test_streams_go_out_event_by_event_not_buffered(slow_gateway):
    # The backend takes 8 s; a gateway that buffered would deliver every event at its end.
    start = time.perf_counter()
    arrivals = {event.type: time.perf_counter() - start for event in oai(
        slow_gateway, max_retries=0).responses.create(model=MODEL, input=TEXT, stream=True)}
    assert arrivals["response.completed"] - arrivals["response.content_part.added"] > 4
    start = time.perf_counter()
    with claude(slow_gateway, max_retries=0).messages.stream(
            model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        texts = [time.perf_counter() - start for _ in stream.text_stream]
    assert texts[-1] - texts[0] > 4 and len(texts) == 16


def test_the_gateways_own_token_limit_is_a_429_in_each_apis_shape(slow_gateway):
    # 6000 tokens per minute: a stream holding about 5,900 leaves too few for the next request
    # of either API until the bucket refills.
    gateway = slow_gateway
    with claude(gateway, max_retries=0).messages.stream(
            model=MODEL, max_tokens=5900, messages=MESSAGES) as held:
        next(iter(held))  # reserved and streaming: not settled yet
        with pytest.raises(anthropic.RateLimitError) as limited:
            claude(gateway, max_retries=0).messages.create(
                model=MODEL, max_tokens=300, messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as tokens_429:
            oai(gateway, max_retries=0).responses.create(model=MODEL, input=TEXT,
                                                         max_output_tokens=300)
    body = limited.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "tokens_rate_limited"
    headers = limited.value.response.headers
    assert int(headers["retry-after"]) >= 1 and headers["anthropic-ratelimit-tokens-limit"]
    assert tokens_429.value.code == "rate_limit_exceeded" and tokens_429.value.type == "tokens"
