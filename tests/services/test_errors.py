"""Errors on demand: the x-sim-error, x-sim-error-times and x-sim-error-key request headers."""

from __future__ import annotations

import uuid

import httpx
import pytest

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
ENDPOINTS = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 1}),
    ("POST", "/v1/embeddings", {"input": "hi"}),
    ("POST", "/infer", {"prompt": "hi"}),
]
EXPECTED = {
    429: {"type": "requests", "code": "rate_limit_exceeded"},
    500: {"type": "server_error", "code": "server_error"},
    503: {"type": "server_error", "code": "server_error"},
}


@pytest.mark.parametrize("status", sorted(EXPECTED))
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_header_forces_error(
    api: httpx.Client, status: int, method: str, path: str, body: dict | None,
) -> None:
    response = api.request(method, path, json=body, headers={"x-sim-error": str(status)})
    assert response.status_code == status
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert {"type": error["type"], "code": error["code"]} == EXPECTED[status]
    assert error["message"]


def test_times_and_key_fail_only_the_first_requests(api: httpx.Client) -> None:
    key, other_key = str(uuid.uuid4()), str(uuid.uuid4())

    def chat(key: str) -> int:
        headers = {"x-sim-error": "429", "x-sim-error-times": "2", "x-sim-error-key": key}
        return api.post("/v1/chat/completions", json=CHAT, headers=headers).status_code

    assert [chat(key), chat(key), chat(key), chat(key)] == [429, 429, 200, 200]
    assert chat(other_key) == 429


def test_zero_times_never_fails(api: httpx.Client) -> None:
    headers = {"x-sim-error": "500", "x-sim-error-times": "0", "x-sim-error-key": "zero"}
    assert api.post("/infer", json={"prompt": "x"}, headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [
    {"x-sim-error": "404"},
    {"x-sim-error": "boom"},
    {"x-sim-error": "500", "x-sim-error-times": "2"},
    {"x-sim-error": "500", "x-sim-error-times": "-1", "x-sim-error-key": "k"},
])
def test_bad_error_headers_are_400(api: httpx.Client, headers: dict[str, str]) -> None:
    response = api.post("/v1/embeddings", json={"input": "x"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
