"""Gateway errors in OpenAI's shape, for the OpenAI routes.

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}

`type` is what OpenAI puts there: "requests" or "tokens" for a 429 (code "rate_limit_exceeded"),
"invalid_request_error" for any other 4xx, "server_error" for 5xx; `code` is otherwise the
gateway's stable code (invalid_json, model_not_found, upstream_timeout...). The request id
travels in the X-Request-ID header, which the OpenAI SDK exposes as `request_id`.
"""

from __future__ import annotations

import json

from function_app.ratelimit.limits import Decision
from function_app.ratelimit.token_headers import (
    openai_limit_headers,
    retry_after_ms,
)

from ..core.errors import GatewayError, RateLimited, TokenRateLimited
from ..http.headers import Headers
from ..http.messages import GatewayResponse


def openai_type(error: GatewayError) -> str:
    if isinstance(error, TokenRateLimited):
        return "tokens"
    if isinstance(error, RateLimited):
        return "requests"
    return "invalid_request_error" if error.status < 500 else "server_error"


def openai_error_body(error: GatewayError) -> bytes:
    code = "rate_limit_exceeded" if isinstance(error, RateLimited) else error.code
    return json.dumps({"error": {"message": error.message, "type": openai_type(error),
                                 "param": None, "code": code}}).encode()


def openai_error_response(error: GatewayError, requests: Decision | None,
                          tokens: Decision | None) -> GatewayResponse:
    """The error with its own headers plus the x-ratelimit-* headers of the decisions made
    (the request limiter's and the token limiter's, None when not made)."""
    headers = Headers([("content-type", "application/json"), *error.headers.items(),
                       *openai_limit_headers(requests, tokens)])
    if isinstance(error, RateLimited):
        headers.extend(retry_after_ms(tokens if isinstance(error, TokenRateLimited) else requests))
    return GatewayResponse(error.status, headers, openai_error_body(error))
