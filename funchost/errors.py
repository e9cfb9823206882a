"""Errors the host itself answers, in the project's JSON shape (pure).

`{"error": {"code", "message", "request_id"}}`; the request id is the client's `X-Request-ID`
when it is sane, else a new one, and is returned in `X-Request-ID`. No internal detail.
"""

from __future__ import annotations

import json
import re
import uuid

SANE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

MESSAGES = {
    "unauthorized": (401, "A valid function key is required (x-functions-key or code)."),
    "not_found": (404, "No function matches this path."),
    "method_not_allowed": (405, "This function does not accept the method."),
    "request_timeout": (408, "The request headers did not arrive in time."),
    "payload_too_large": (413, "The request body is larger than the host accepts."),
    "uri_too_long": (414, "The request line is too long."),
    "headers_too_large": (431, "The request has too many or too large headers."),
    "bad_request": (400, "The request is malformed."),
    "function_failed": (500, "The function failed."),
    "internal_error": (500, "The host failed to handle the request."),
    "worker_unavailable": (503, "The function worker is starting or restarting; retry shortly."),
    "function_timeout": (504, "The function did not answer in time."),
}


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"x-request-id" and SANE_ID.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex


def error_body(code: str, rid: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for a host error `code` (one of MESSAGES)."""
    status, message = MESSAGES[code]
    body = json.dumps({"error": {"code": code, "message": message, "request_id": rid}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"x-request-id", rid.encode()), (b"cache-control", b"no-store")]
    return status, headers, body
