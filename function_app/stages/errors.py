"""Render every failure as the JSON error shape; nothing else escapes to the client."""

from __future__ import annotations

import json
import logging

from ..core.errors import GatewayError
from ..core.models import GatewayRequest, GatewayResponse
from ..core.pipeline import Handler

log = logging.getLogger(__name__)


def error_response(error: GatewayError, request_id: str) -> GatewayResponse:
    """`{"error": {"code", "message", "request_id"}}` with the error's status and headers."""
    body = json.dumps({"error": {"code": error.code, "message": error.message,
                                 "request_id": request_id}}).encode()
    headers = [("content-type", "application/json"), *error.headers.items()]
    return GatewayResponse(error.status, headers, body)


async def errors_stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
    try:
        return await call_next(request)
    except GatewayError as error:
        return error_response(error, request.request_id)
    except Exception:
        # The detail goes to the log only: no traceback or internal address reaches the client.
        log.exception("unhandled error, request_id=%s", request.request_id)
        return error_response(GatewayError(), request.request_id)
