"""Routes the gateway answers itself, never proxied: kind "local.ok" answers {"ok": true}.

The prototype's GET /limited is one: it exists to show the rate limiter (and its headers)
without any backend behind it.
"""

from __future__ import annotations

from ..core.pipeline import Handler
from ..http.headers import Headers
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.routes import LOCAL_OK, MATCH


async def local_stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
    if MATCH.need(request.context).route.kind == LOCAL_OK:
        return GatewayResponse(200, Headers([("content-type", "application/json"),
                                             ("cache-control", "no-store")]), b'{"ok": true}')
    return await call_next(request)
