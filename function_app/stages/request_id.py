"""Give every request an id (the client's X-Request-ID when sane) and return it on every answer."""

from __future__ import annotations

from ..core.pipeline import Handler
from ..http.forwarding import request_id_from
from ..http.messages import GatewayRequest, GatewayResponse


async def request_id_stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
    request.request_id = request_id_from(request.headers.get("x-request-id"))
    response = await call_next(request)
    response.headers.set("X-Request-ID", request.request_id)
    return response
