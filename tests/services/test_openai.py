"""The OpenAI-compatible endpoints of both simulators: shapes, token accounting, streaming."""

from __future__ import annotations

import base64
import json
import math
import struct
import uuid

import httpx
import pytest

from .sse import read_stream

SYSTEM = "You are terse."
QUESTION = "hello wide world"
CHAT = {"model": "gpt-test", "messages": [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
]}
# ceil(chars / 4) + 4 per message, as documented in the simulators.
CHAT_PROMPT_TOKENS = math.ceil(len(SYSTEM) / 4) + 4 + math.ceil(len(QUESTION) / 4) + 4


def test_models_lists_the_configured_model(api: httpx.Client, kind: str) -> None:
    response = api.get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {"object": "list", "data": [
        {"id": f"sim-{kind}", "object": "model", "created": 1_700_000_000, "owned_by": "sim"},
    ]}


def test_chat_completion_answers_with_usage(api: httpx.Client) -> None:
    response = api.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-test"
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    words = choice["message"]["content"].split()
    assert words[:5] == ["echo:", "hello", "wide", "world", "echo:"]
    assert len(words) == 16
    assert body["usage"] == {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": 16,
                             "total_tokens": CHAT_PROMPT_TOKENS + 16}


def test_chat_completion_is_deterministic(api: httpx.Client) -> None:
    first, second = (api.post("/v1/chat/completions", json=CHAT).json() for _ in range(2))
    assert first["choices"] == second["choices"]
    assert first["usage"] == second["usage"]


def test_chat_answers_the_last_user_message(api: httpx.Client) -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": None},
                {"role": "user", "content": [{"type": "text", "text": "second"}]}]
    body = api.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 2}).json()
    assert body["choices"][0]["message"]["content"] == "echo: second"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_the_answer(api: httpx.Client, field: str) -> None:
    body = api.post("/v1/chat/completions", json={**CHAT, field: 3}).json()
    assert body["choices"][0]["message"]["content"] == "echo: hello wide"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_text_completion_answers_with_usage(api: httpx.Client, kind: str) -> None:
    body = api.post("/v1/completions", json={"prompt": "abc def", "max_tokens": 20}).json()
    assert body["object"] == "text_completion"
    assert body["model"] == f"sim-{kind}"  # no model in the request
    [choice] = body["choices"]
    assert choice["text"].startswith("echo: abc def echo: abc")
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 16, "total_tokens": 18}


def test_chat_stream_sends_chunks_then_finish_then_done(api: httpx.Client) -> None:
    stream = read_stream(api, "/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 4})
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert stream.done
    *tokens, final = stream.chunks
    assert len(tokens) == 4
    assert tokens[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in chunk["choices"][0]["delta"] for chunk in tokens[1:])
    assert "".join(chunk["choices"][0]["delta"]["content"] for chunk in tokens) == (
        "echo: hello wide world")
    assert final["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]
    assert {chunk["id"] for chunk in stream.chunks} == {stream.chunks[0]["id"]}
    for chunk in stream.chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "gpt-test"
        assert "usage" not in chunk


def test_stream_usage_chunk_comes_last_when_asked(api: httpx.Client) -> None:
    request = {**CHAT, "stream": True, "max_tokens": 2, "stream_options": {"include_usage": True}}
    stream = read_stream(api, "/v1/chat/completions", request)
    assert stream.done
    *others, last = stream.chunks
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": 2,
                             "total_tokens": CHAT_PROMPT_TOKENS + 2}
    assert others[-1]["choices"][0]["finish_reason"] == "length"
    assert all(chunk["usage"] is None for chunk in others)


def test_stream_delivers_first_token_long_before_the_last(api: httpx.Client) -> None:
    # TTFT_MS=50 and TOKEN_MS=20: ten tokens spread over 9 x 20 ms after the first one. A
    # buffering server would deliver them all at once.
    stream = read_stream(api, "/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 10})
    assert len(stream.chunks) == 11
    spread = stream.arrivals[9] - stream.arrivals[0]
    assert spread >= 0.5 * 9 * 0.020


def test_text_completion_stream(api: httpx.Client) -> None:
    request = {"prompt": "abc", "stream": True, "stream_options": {"include_usage": True}}
    stream = read_stream(api, "/v1/completions", request)
    assert stream.done
    *tokens, final, usage = stream.chunks
    assert len(tokens) == 16
    assert all(chunk["object"] == "text_completion" for chunk in stream.chunks)
    assert "".join(chunk["choices"][0]["text"] for chunk in tokens).startswith("echo: abc echo:")
    assert final["choices"][0]["finish_reason"] == "stop"
    assert usage["usage"] == {"prompt_tokens": 1, "completion_tokens": 16, "total_tokens": 17}


def test_embeddings_are_deterministic_unit_vectors(api: httpx.Client) -> None:
    request = {"model": "emb", "input": ["alpha", "beta", "alpha"]}
    body = api.post("/v1/embeddings", json=request).json()
    assert body["object"] == "list"
    assert body["model"] == "emb"
    vectors = [item["embedding"] for item in body["data"]]
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(len(vector) == 16 for vector in vectors)
    assert all(math.isclose(math.hypot(*vector), 1.0) for vector in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert body["usage"] == {"prompt_tokens": 2 + 1 + 2, "total_tokens": 5}
    single = api.post("/v1/embeddings", json={"input": "alpha"}).json()
    assert single["data"][0]["embedding"] == vectors[0]


def test_embeddings_in_base64_are_little_endian_float32(api: httpx.Client) -> None:
    floats = api.post("/v1/embeddings", json={"input": "alpha"}).json()["data"][0]["embedding"]
    request = {"input": "alpha", "encoding_format": "base64"}
    encoded = api.post("/v1/embeddings", json=request).json()["data"][0]["embedding"]
    decoded = struct.unpack("<16f", base64.b64decode(encoded))
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(decoded, floats, strict=True))


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", b"{not json"),
    ("/v1/chat/completions", b"[]"),
    ("/v1/chat/completions", b'{"messages": []}'),
    ("/v1/chat/completions", b'{"messages": [{"content": "no role"}]}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": 7}]}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "stream": 1}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "model": 1}'),
    ("/v1/completions", b'{"prompt": 5}'),
    ("/v1/completions", b'{"prompt": ["a", "b"]}'),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 1.5}'),
    ("/v1/embeddings", b'{"input": []}'),
    ("/v1/embeddings", b'{"input": [1, 2]}'),
    ("/v1/embeddings", b'{"input": "x", "encoding_format": "int8"}'),
])
def test_malformed_requests_get_openai_400(api: httpx.Client, path: str, body: bytes) -> None:
    response = api.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "bad_request"
    assert isinstance(error["message"], str)
    assert error["message"]


def test_unknown_path_is_a_json_404(api: httpx.Client) -> None:
    response = api.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_held_stream_sends_its_first_event_then_waits_for_its_release(api: httpx.Client) -> None:
    key = uuid.uuid4().hex
    request = {**CHAT, "stream": True, "max_tokens": 4}
    with api.stream("POST", "/v1/chat/completions", json=request,
                    headers={"x-sim-hold-key": key}) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert api.post(f"/sim/release/{key}").json() == {"held": True}
        rest = [line for line in lines if line.startswith("data: ")]
    assert json.loads(first[6:])["choices"][0]["delta"]["content"]
    assert len(rest) == 5 and rest[-1] == "data: [DONE]"  # three tokens, finish, [DONE]
    assert api.post(f"/sim/release/{key}").json() == {"held": False}  # ended: nothing held
