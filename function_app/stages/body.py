"""Read the request body under a size cap, and check JSON where the route asks for it."""

from __future__ import annotations

import json

from ..core.errors import BadRequest, InvalidJson, PayloadTooLarge
from ..core.models import GatewayRequest, GatewayResponse
from ..core.pipeline import Handler, Stage


def check_json_object(body: bytes) -> dict:
    """The body decoded as a JSON object, or InvalidJson / BadRequest."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson() from None
    if not isinstance(decoded, dict):
        raise BadRequest("The request body must be a JSON object.")
    return decoded


def body_stage(max_bytes: int) -> Stage:
    """Reject bodies over `max_bytes` with 413, early from Content-Length when it is declared."""

    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        declared = request.header("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise PayloadTooLarge()
        reader = request.context.pop("body_reader", None)
        if reader is not None:
            request.body = await reader(max_bytes)
        if len(request.body) > max_bytes:
            raise PayloadTooLarge()
        match = request.context.get("match")
        if match is not None and match.route.json_body:
            request.context["json"] = check_json_object(request.body)
        return await call_next(request)

    return stage
