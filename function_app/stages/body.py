"""Read the request body under a size cap, and check JSON where the route asks for it."""

from __future__ import annotations

from ..core.errors import PayloadTooLarge
from ..core.json_object import check_json_object
from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse, Unread
from ..routing.routes import MATCH


def body_stage(max_bytes: int) -> Stage:
    """Reject bodies over `max_bytes` with 413, early from Content-Length when it is declared."""

    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise PayloadTooLarge()
        body = request.body
        if isinstance(body, Unread):
            body = request.body = await body.read(max_bytes)
        if len(body) > max_bytes:
            raise PayloadTooLarge()
        if MATCH.need(request.context).route.json_body:
            request.context.json = check_json_object(body)
        return await call_next(request)

    return stage
