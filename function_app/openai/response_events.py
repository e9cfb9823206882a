"""The Responses API's stream: which first events are preamble, which are failures, and the
event that ends a stream broken after its first byte.

A stream is `event: <type>` + `data: {"type": <type>, ...}` events: response.created and
response.in_progress (preamble), output items and text deltas, and one final event carrying the
response with its usage: response.completed, response.incomplete or response.failed. Failures
come as response.failed (`response.error.code`) or as an `error` event (`code`, `message`).
"""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import GatewayError
from .early import PREAMBLE, Failure

PREAMBLE_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
# Codes that say the request itself was at fault: retrying elsewhere would not help.
INVALID_CODES = frozenset({"invalid_prompt", "invalid_request_error", "context_length_exceeded",
                           "invalid_image", "bad_request"})


def failure_status(code: str) -> int:
    """The HTTP status an in-stream failure code stands for."""
    if "rate_limit" in code or code == "insufficient_quota":
        return 429
    if code in INVALID_CODES:
        return 400
    if "overload" in code or code in ("server_is_overloaded", "slow_down"):
        return 503
    return 502


def judge(name: str, data: Any) -> str | Failure | None:
    """An early.Judge for Responses streams."""
    if name in PREAMBLE_EVENTS:
        return PREAMBLE
    if name == "response.failed":
        response = data.get("response") if isinstance(data, dict) else None
        error = response.get("error") if isinstance(response, dict) else None
        return _failure(error if isinstance(error, dict) else {})
    if name == "error":
        return _failure(data if isinstance(data, dict) else {})
    return None


def _failure(error: dict) -> Failure:
    code = error.get("code") if isinstance(error.get("code"), str) else "server_error"
    message = error.get("message") if isinstance(error.get("message"), str) \
        else "The upstream response failed."
    status = failure_status(code)
    kind = "tokens" if status == 429 else "invalid_request_error" if status < 500 \
        else "server_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None,
                                 "code": code}}).encode()
    return Failure(status, body, 1.0 if status == 429 else None)


def error_event(error: GatewayError) -> bytes:
    """The `error` event ending a Responses stream broken after its first byte."""
    code = "rate_limit_exceeded" if error.status == 429 else error.code
    data = json.dumps({"type": "error", "code": code, "message": error.message,
                       "param": None})
    return b"\n\nevent: error\ndata: " + data.encode() + b"\n\n"
