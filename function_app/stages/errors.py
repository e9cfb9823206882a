"""Render every failure as the JSON error shape; nothing else escapes to the client.

OpenAI routes (and any unmatched path under /v1/, where OpenAI clients look) answer errors in
OpenAI's shape, so the OpenAI SDKs parse them and honour Retry-After; MCP routes as JSON-RPC
errors (mcp/errors.py), so MCP clients surface them; everything else in the gateway's own shape.
"""

from __future__ import annotations

import json
import logging
import time

from ..anthropic.errors import anthropic_error_response
from ..core.errors import ClientDisconnected, GatewayError
from ..core.pipeline import Handler
from ..http.headers import Headers
from ..http.messages import GatewayRequest, GatewayResponse
from ..mcp.errors import mcp_error_response
from ..openai.errors import openai_error_response
from ..ratelimit.limits import REQUESTS_DECISION, TOKENS_DECISION
from ..routing.routes import ANTHROPIC_KINDS, MATCH, MCP, OPENAI_KINDS

log = logging.getLogger(__name__)
OPENAI_PREFIX = "/v1/"
ANTHROPIC_PREFIX = "/v1/messages"


def error_response(error: GatewayError, request_id: str) -> GatewayResponse:
    """`{"error": {"code", "message", "request_id"}}` with the error's status and headers."""
    body = json.dumps({"error": {"code": error.code, "message": error.message,
                                 "request_id": request_id}}).encode()
    headers = Headers([("content-type", "application/json"), *error.headers.items()])
    return GatewayResponse(error.status, headers, body)


def render(error: GatewayError, request: GatewayRequest) -> GatewayResponse:
    context = request.context
    match = MATCH.get(context)
    anthropic = match.route.kind in ANTHROPIC_KINDS if match is not None \
        else request.path.startswith(ANTHROPIC_PREFIX)
    if anthropic:  # the reset times of its limit headers are wall-clock times
        return anthropic_error_response(error, request.request_id, REQUESTS_DECISION.get(context),
                                        TOKENS_DECISION.get(context), time.time())
    openai = match.route.kind in OPENAI_KINDS if match is not None \
        else request.path.startswith(OPENAI_PREFIX)
    if openai:
        return openai_error_response(error, REQUESTS_DECISION.get(context),
                                     TOKENS_DECISION.get(context))
    if match is not None and match.route.kind == MCP:
        return mcp_error_response(error, request.request_id)
    return error_response(error, request.request_id)


async def errors_stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
    try:
        return await call_next(request)
    except ClientDisconnected as error:
        # Routine on the internet, not a fault of the gateway: one line, no traceback.
        log.info("client disconnected before the request was complete, request_id=%s",
                 request.request_id)
        return render(error, request)
    except GatewayError as error:
        return render(error, request)
    except Exception:
        # The detail goes to the log only: no traceback or internal address reaches the client.
        log.exception("unhandled error, request_id=%s", request.request_id)
        return render(GatewayError(), request)
