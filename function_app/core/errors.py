"""The one error tree clients see.

    GatewayError                 (500 internal_error)
    ├── BadRequest               (400 bad_request)
    │   ├── InvalidJson          (400 invalid_json)
    │   ├── JsonTooDeep          (400 json_too_deep, nesting over MAX_JSON_DEPTH)
    │   ├── InvalidPath          (400 invalid_path: dot segments, encoded slashes, controls)
    │   └── NeverFits            (400 exceeds_limit: a cost no bucket can ever hold)
    ├── NotFound                 (404 not_found)
    │   └── ModelNotFound        (404 model_not_found, OpenAI routes: no backend for the model)
    ├── MethodNotAllowed         (405 method_not_allowed, carries Allow)
    ├── PayloadTooLarge          (413 payload_too_large)
    ├── RateLimited              (429 rate_limited, carries Retry-After)
    │   ├── TokenRateLimited     (429 tokens_rate_limited, a tokens-per-minute limit)
    │   └── BackendsCoolingDown  (429 backends_rate_limited: every member of the pool sent a
    │                             429 and waits out its Retry-After; the shortest wait is given)
    ├── UpstreamError            (502 upstream_unavailable: refused, reset, bad answer)
    │   ├── UpstreamConnectError (502 upstream_unavailable: no connection, request never sent)
    │   └── UpstreamEventTooLarge (502 upstream_event_too_large: a streamed event over
    │                              SSE_MAX_EVENT_BYTES; ends the stream as an error event)
    ├── Overloaded               (503 overloaded)
    │   ├── StorageUnavailable   (503 storage_unavailable, fail-closed limiter)
    │   └── NoHealthyBackend     (503 no_healthy_backend: every breaker of the plan is open)
    ├── Misconfigured            (503 misconfigured: a setting is bad; the log names it)
    ├── UpstreamTimeout          (504 upstream_timeout)
    └── ClientDisconnected       (499 client_disconnected: the client left mid-request; logged,
                                  never seen by anyone)

Foreign exceptions are translated into this tree where they enter (the upstream adapter, the
limiter); the error stage renders any GatewayError as JSON (in OpenAI's shape on OpenAI routes,
see function_app/openai/errors.py) and anything else as a bare 500 without
detail, so no traceback or internal address leaves the gateway.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A status, a stable `code` for the JSON body and the message a client sees. Each subclass
    states what differs in its class line: `class X(Parent, code=..., message=..., status=...)`;
    what it leaves out it inherits."""

    status = 500
    code = "internal_error"
    public_message = "The gateway failed to handle the request."

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None,
                          message: str | None = None, **kwargs: object):
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status
        cls.code = code or cls.code
        cls.public_message = message or cls.public_message

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message or self.public_message)
        self.message = message or self.public_message
        self.headers = headers or {}


class BadRequest(GatewayError, status=400, code="bad_request",
                 message="The request is malformed."):
    pass


class InvalidJson(BadRequest, code="invalid_json", message="The request body is not valid JSON."):
    pass


class JsonTooDeep(BadRequest, code="json_too_deep",
                  message="The request body nests JSON deeper than the gateway accepts."):
    pass


class InvalidPath(BadRequest, code="invalid_path", message=(
        "The request path is not allowed: dot segments, encoded slashes or backslashes, control "
        "characters and encoded '?' or '#' are refused.")):
    pass


class NeverFits(BadRequest, code="exceeds_limit",
                message="The request costs more than the limit can ever admit."):
    pass


class NotFound(GatewayError, status=404, code="not_found", message="No route matches this path."):
    pass


class ModelNotFound(NotFound, code="model_not_found",
                    message="The model does not exist or no backend serves it."):
    pass


class MethodNotAllowed(GatewayError, status=405, code="method_not_allowed",
                       message="This route does not accept the method."):
    def __init__(self, allowed: list[str]):
        super().__init__(headers={"Allow": ", ".join(allowed)})
        self.allowed = allowed


class PayloadTooLarge(GatewayError, status=413, code="payload_too_large",
                      message="The request body is larger than the gateway accepts."):
    pass


class RateLimited(GatewayError, status=429, code="rate_limited",
                  message="Too many requests; retry after the time in Retry-After."):
    pass


class TokenRateLimited(RateLimited, code="tokens_rate_limited",
                       message="Too many tokens per minute; retry after the time in Retry-After."):
    pass


class BackendsCoolingDown(RateLimited, code="backends_rate_limited",
                          message="Every backend of this model is rate limited; retry after the "
                                  "time in Retry-After."):
    pass


class UpstreamError(GatewayError, status=502, code="upstream_unavailable",
                    message="The backend could not be reached or broke the connection."):
    pass


class UpstreamConnectError(UpstreamError):
    """No connection was made, so the backend cannot have seen the request (safe to resend)."""


class UpstreamEventTooLarge(UpstreamError, code="upstream_event_too_large",
                            message="The backend streamed an event larger than the gateway "
                                    "accepts; the stream was ended."):
    pass


class Overloaded(GatewayError, status=503, code="overloaded",
                 message="The gateway is overloaded; retry shortly."):
    pass


class StorageUnavailable(Overloaded, code="storage_unavailable",
                         message="Rate-limit storage is unavailable and the gateway fails closed."):
    pass


class NoHealthyBackend(Overloaded, code="no_healthy_backend",
                       message="No backend for this route is available right now; retry shortly."):
    pass


class UpstreamTimeout(GatewayError, status=504, code="upstream_timeout",
                      message="The backend did not answer in time."):
    pass


class ClientDisconnected(
        GatewayError, code="client_disconnected",
        status=499,  # nginx's "client closed request", as log tools know it
        message="The client closed the connection before the request was complete."):
    """The client closed its connection before the gateway had the whole request.

    Nobody reads the answer; the error stage logs it as what it is, without a traceback.
    """


class Misconfigured(GatewayError, status=503, code="misconfigured",
                    message="The gateway is misconfigured."):
    """A setting is invalid, so the gateway cannot be built. The client is told no more; the
    worker's log names the setting."""
