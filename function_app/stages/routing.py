"""Match the path and method against the route table (404 / 405 before any body is read)."""

from __future__ import annotations

from ..core.models import GatewayRequest, GatewayResponse
from ..core.pipeline import Handler, Stage
from ..core.routes import RouteTable


def routing_stage(table: RouteTable) -> Stage:
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        request.context["match"] = table.match(request.path, request.method)
        return await call_next(request)

    return stage
