"""OpenAI's error shape and rate-limit headers, and closing a stream the client left."""

import json

import pytest

from function_app.app import to_response
from function_app.core.errors import (
    BadRequest,
    ModelNotFound,
    RateLimited,
    TokenRateLimited,
    UpstreamTimeout,
)
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse
from function_app.openai.errors import openai_error_body, openai_error_response
from function_app.ratelimit.limits import Decision, Limit
from function_app.ratelimit.token_headers import duration, openai_limit_headers


@pytest.mark.parametrize("seconds, text", [
    (0, "0ms"), (0.0204, "20ms"), (1, "1s"), (1.5, "1.5s"), (59.9996, "1m0s"), (360, "6m0s"),
    (3723.25, "1h2m3.25s"),
])
def test_durations_are_written_like_openai(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("error, kind, code", [
    (TokenRateLimited(), "tokens", "rate_limit_exceeded"),
    (RateLimited(), "requests", "rate_limit_exceeded"),
    (BadRequest("x"), "invalid_request_error", "bad_request"),
    (ModelNotFound(), "invalid_request_error", "model_not_found"),
    (UpstreamTimeout(), "server_error", "upstream_timeout"),
])
def test_error_types_and_codes(error, kind, code):
    body = json.loads(openai_error_body(error))["error"]
    assert (body["type"], body["code"], body["param"]) == (kind, code, None)
    assert body["message"] == error.message


def test_limit_headers_come_from_both_decisions():
    requests = Decision(True, "client", Limit(10, 20), 19, 0.1)
    tokens = Decision(False, "client_tpm", Limit(100, 6000), 0, 60, retry_after_s=2.5)
    headers = dict(openai_limit_headers(requests, tokens))
    assert headers == {
        "x-ratelimit-limit-requests": "20", "x-ratelimit-remaining-requests": "19",
        "x-ratelimit-reset-requests": "100ms", "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m0s"}
    response = openai_error_response(TokenRateLimited(headers={"Retry-After": "3"}), requests,
                                      tokens)
    assert ("retry-after-ms", "2500") in response.headers and response.status == 429
    assert openai_limit_headers(None, Decision(True)) == []  # no limit, no headers


async def test_a_stream_the_client_left_is_closed_at_once():
    closed = []

    async def body():
        try:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"
        finally:
            closed.append(True)

    response = to_response(GatewayResponse(200, Headers(), body()))

    async def send(message):
        if message["type"] == "http.response.body":
            raise OSError("client went away")

    with pytest.raises(OSError):
        await response.stream_response(send)
    assert closed == [True]
