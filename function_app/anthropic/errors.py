"""Gateway errors in Anthropic's shape, for the Messages routes.

    {"type": "error", "error": {"type": "rate_limit_error", "message": "...",
     "code": "<the gateway's stable code>"}, "request_id": "..."}

`error.type` is Anthropic's: invalid_request_error (400, 405, 413 request_too_large),
authentication_error (401), permission_error (403), not_found_error (404), rate_limit_error
(429: request and token limits, and budget_exceeded), api_error (other 5xx), overloaded_error
(503). The request id also travels in `request-id`, the header the Anthropic SDK reads.
Limits go out as anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset} (reset as an
RFC 3339 time) beside Retry-After.
"""

from __future__ import annotations

import datetime as dt
import json

from function_app.ratelimit.limits import Decision

from ..core.errors import GatewayError
from ..http.headers import Headers
from ..http.messages import GatewayResponse
from ..openai.early import PREAMBLE, Failure

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
         429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}
# An in-stream error's type -> the status it stands for (overloaded as 503: the attempt loop
# retries and falls back on it; the body keeps Anthropic's type).
STATUSES = {"invalid_request_error": 400, "authentication_error": 401,
            "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
            "rate_limit_error": 429, "overloaded_error": 503, "api_error": 502}
PREAMBLE_EVENTS = frozenset({"message_start", "ping"})


def anthropic_type(status: int) -> str:
    return TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_object(error: GatewayError, request_id: str | None = None) -> dict:
    body = {"type": "error", "error": {"type": anthropic_type(error.status),
                                       "message": error.message, "code": error.code}}
    if request_id:
        body["request_id"] = request_id
    return body


def anthropic_error_response(error: GatewayError, request_id: str, requests: Decision | None,
                             tokens: Decision | None, now: float) -> GatewayResponse:
    headers = Headers([("content-type", "application/json"), *error.headers.items(),
                       ("request-id", request_id), *limit_headers(requests, tokens, now)])
    return GatewayResponse(error.status, headers,
                           json.dumps(error_object(error, request_id)).encode())


def limit_headers(requests: Decision | None, tokens: Decision | None, now: float
                  ) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for kind, decision in (("requests", requests), ("tokens", tokens)):
        if decision is None or decision.limit is None:
            continue
        reset = dt.datetime.fromtimestamp(now + decision.reset_s, dt.UTC)
        headers += [
            (f"anthropic-ratelimit-{kind}-limit", str(int(decision.limit.burst))),
            (f"anthropic-ratelimit-{kind}-remaining", str(max(0, int(decision.remaining)))),
            (f"anthropic-ratelimit-{kind}-reset", reset.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ]
    return headers


def judge(name: str, data: object) -> str | Failure | None:
    """An early.Judge for Messages streams: message_start and ping are preamble; an `error`
    event before any content is the failure it names."""
    if name in PREAMBLE_EVENTS:
        return PREAMBLE
    if name != "error":
        return None
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = error.get("type") if isinstance(error.get("type"), str) else "api_error"
    message = error.get("message") if isinstance(error.get("message"), str) \
        else "The upstream stream failed."
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    status = STATUSES.get(kind, 502)
    return Failure(status, body, 1.0 if status == 429 else None)


def error_event(error: GatewayError) -> bytes:
    """The `error` event ending a Messages stream broken after its first byte."""
    data = json.dumps(error_object(error))
    return b"\n\nevent: error\ndata: " + data.encode() + b"\n\n"
