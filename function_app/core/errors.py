"""The one error tree clients see.

    GatewayError                 (500 internal_error)
    ├── BadRequest               (400 bad_request)
    │   └── InvalidJson          (400 invalid_json)
    ├── NotFound                 (404 not_found)
    │   └── ModelNotFound        (404 model_not_found, OpenAI routes: no backend for the model)
    ├── MethodNotAllowed         (405 method_not_allowed, carries Allow)
    ├── PayloadTooLarge          (413 payload_too_large)
    ├── RateLimited              (429 rate_limited, carries Retry-After)
    │   └── TokenRateLimited     (429 tokens_rate_limited, a tokens-per-minute limit)
    ├── UpstreamError            (502 upstream_unavailable: refused, reset, bad answer)
    ├── Overloaded               (503 overloaded)
    │   └── StorageUnavailable   (503 storage_unavailable, fail-closed limiter)
    ├── Misconfigured            (503 misconfigured: a setting is bad; the log names it)
    └── UpstreamTimeout          (504 upstream_timeout)

Foreign exceptions are translated into this tree where they enter (the upstream adapter, the
limiter); the error stage renders any GatewayError as JSON (in OpenAI's shape on OpenAI routes,
see function_app/openai/errors.py) and anything else as a bare 500 without
detail, so no traceback or internal address leaves the gateway.
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    code = "internal_error"
    public_message = "The gateway failed to handle the request."

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message or self.public_message)
        self.message = message or self.public_message
        self.headers = headers or {}


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"
    public_message = "The request is malformed."


class InvalidJson(BadRequest):
    code = "invalid_json"
    public_message = "The request body is not valid JSON."


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    public_message = "No route matches this path."


class ModelNotFound(NotFound):
    code = "model_not_found"
    public_message = "The model does not exist or no backend serves it."


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"
    public_message = "This route does not accept the method."

    def __init__(self, allowed: list[str]):
        super().__init__(headers={"Allow": ", ".join(allowed)})
        self.allowed = allowed


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"
    public_message = "The request body is larger than the gateway accepts."


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"
    public_message = "Too many requests; retry after the time in Retry-After."


class TokenRateLimited(RateLimited):
    code = "tokens_rate_limited"
    public_message = "Too many tokens per minute; retry after the time in Retry-After."


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_unavailable"
    public_message = "The backend could not be reached or broke the connection."


class Overloaded(GatewayError):
    status = 503
    code = "overloaded"
    public_message = "The gateway is overloaded; retry shortly."


class StorageUnavailable(Overloaded):
    code = "storage_unavailable"
    public_message = "Rate-limit storage is unavailable and the gateway fails closed."


class UpstreamTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"
    public_message = "The backend did not answer in time."


class Misconfigured(GatewayError):
    """A setting is invalid, so the gateway cannot be built. The client is told no more; the
    worker's log names the setting."""

    status = 503
    code = "misconfigured"
    public_message = "The gateway is misconfigured."
