"""The agents' APIs of both simulators: OpenAI Responses (plain, streamed, stored) and Anthropic
Messages, with usage, cached tokens, errors in each API's shape and failures in the stream;
and the same answers from python and node."""

from __future__ import annotations

import json
import math
import uuid

import httpx
import pytest

from .conftest import BASE_ENV, SimPool

TEXT = "one two three four five"
INPUT_TOKENS = math.ceil(len(TEXT) / 4)
MESSAGE_TOKENS = INPUT_TOKENS + 4
MESSAGES = {"model": "claude-test", "max_tokens": 64,
            "messages": [{"role": "user", "content": TEXT}]}


def events(client: httpx.Client, path: str, body: dict, **headers: str
           ) -> list[tuple[str, dict]]:
    """(event name, data) of a named-event stream, in order."""
    out, name = [], ""
    with client.stream("POST", path, json=body, headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert data["type"] == name
                out.append((name, data))
    return out


def failing(kind: str) -> dict[str, str]:
    return {"x-sim-stream-error": kind, "x-sim-error-times": "1",
            "x-sim-error-key": uuid.uuid4().hex}


def test_response_plain_is_stored_until_deleted(api: httpx.Client) -> None:
    made = api.post("/v1/responses", json={"model": "m", "input": TEXT,
                                           "max_output_tokens": 4}).json()
    assert made["status"] == "incomplete" and made["usage"]["output_tokens"] == 4
    assert made["usage"]["input_tokens"] == INPUT_TOKENS
    assert made["output"][0]["content"][0]["text"] == "echo: one two three"
    assert api.get(f"/v1/responses/{made['id']}").json() == made
    items = api.get(f"/v1/responses/{made['id']}/input_items").json()["data"]
    assert [i["content"][0]["text"] for i in items] == [TEXT]
    assert api.delete(f"/v1/responses/{made['id']}").json()["deleted"] is True
    gone = api.get(f"/v1/responses/{made['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_response_stream_ends_with_its_usage_and_refuses_stream_options(api: httpx.Client
                                                                        ) -> None:
    seen = events(api, "/v1/responses", {"model": "m", "input": TEXT, "stream": True},
                  **{"x-sim-cached-tokens": "3"})
    names = [name for name, _ in seen]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed" and names.count("response.output_text.delta") == 16
    usage = seen[-1][1]["response"]["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 3
    assert [d["sequence_number"] for _, d in seen] == list(range(len(seen)))
    refused = api.post("/v1/responses", json={"model": "m", "input": "x", "stream": True,
                                              "stream_options": {"include_usage": True}})
    assert refused.status_code == 400


def test_response_stream_fails_early_inside_a_200_then_recovers(api: httpx.Client) -> None:
    headers = failing("early")
    body = {"model": "m", "input": TEXT, "stream": True}
    first = [name for name, _ in events(api, "/v1/responses", body, **headers)]
    assert first == ["response.created", "response.in_progress", "response.failed"]
    again = [name for name, _ in events(api, "/v1/responses", body, **headers)]
    assert again[-1] == "response.completed"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/responses", {"model": "m", "input": TEXT, "stream": True}),
    ("/v1/messages", {**MESSAGES, "stream": True})])
def test_a_stream_breaks_mid_way_on_demand(api: httpx.Client, path: str, body: dict) -> None:
    with pytest.raises(httpx.HTTPError):
        events(api, path, body, **failing("mid"))


def test_message_plain_with_cache_reads_and_count_tokens(api: httpx.Client) -> None:
    message = api.post("/v1/messages", json=MESSAGES,
                       headers={"x-sim-cached-tokens": "5"}).json()
    assert message["type"] == "message" and message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": MESSAGE_TOKENS - 5, "output_tokens": 16,
                                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5}
    count = api.post("/v1/messages/count_tokens", json=MESSAGES).json()
    assert count == {"input_tokens": MESSAGE_TOKENS}


def test_message_stream_has_usage_in_start_and_delta(api: httpx.Client) -> None:
    seen = events(api, "/v1/messages", {**MESSAGES, "stream": True})
    names = [name for name, _ in seen]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_delta") == 16
    assert seen[0][1]["message"]["usage"]["input_tokens"] == MESSAGE_TOKENS
    assert seen[-2][1]["usage"] == {"output_tokens": 16}


def test_message_early_failure_is_an_overloaded_error_event(api: httpx.Client) -> None:
    seen = events(api, "/v1/messages", {**MESSAGES, "stream": True}, **failing("early"))
    assert [name for name, _ in seen] == ["message_start", "error"]
    assert seen[-1][1]["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(("status", "kind"), [("429", "rate_limit_error"),
                                              ("529", "overloaded_error"),
                                              ("500", "api_error")])
def test_message_errors_are_in_anthropics_shape(api: httpx.Client, status: str,
                                                kind: str) -> None:
    reply = api.post("/v1/messages", json=MESSAGES, headers={"x-sim-error": status})
    assert reply.status_code == int(status)
    assert reply.json()["type"] == "error" and reply.json()["error"]["type"] == kind
    bad = api.post("/v1/messages", content=b"{oops")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    no_budget = api.post("/v1/messages", json={**MESSAGES, "max_tokens": None})
    assert no_budget.status_code == 400


# --- parity ----------------------------------------------------------------------------------

VOLATILE = {"id", "created_at", "item_id"}


def normal(value):
    """`value` without what identifies one response (ids, times)."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    return value


@pytest.fixture(scope="module")
def both(sim_pool: SimPool) -> list[httpx.Client]:
    return [httpx.Client(base_url=sim_pool.url(kind, **BASE_ENV), timeout=10)
            for kind in ("python", "node")]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/responses", {"model": "m", "input": [{"role": "user", "content": "naïve 🙂"}],
                       "instructions": "brief", "max_output_tokens": 5}),
    ("/v1/messages", {**MESSAGES, "system": "Sé breve"}),
    ("/v1/messages/count_tokens", MESSAGES)])
def test_same_agent_answers(both: list[httpx.Client], path: str, body: dict) -> None:
    python, node = (client.post(path, json=body) for client in both)
    assert python.status_code == node.status_code == 200
    assert normal(python.json()) == normal(node.json())


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/responses", {"model": "m", "input": TEXT, "stream": True}),
    ("/v1/messages", {**MESSAGES, "stream": True})])
def test_same_agent_streams(both: list[httpx.Client], path: str, body: dict) -> None:
    python, node = (normal(events(client, path, body)) for client in both)
    assert python == node
