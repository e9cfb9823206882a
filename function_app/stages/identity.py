"""Name the client once, for every stage after this one: the request limiter, the token limiter,
the cache's per-client partitions and telemetry all read `context.client_id`.

Runs after routing and the tenant auth stage (a gateway key's tenant is then the client) and
before rate limiting; errors raised before it leave `client_id` None.
"""

from __future__ import annotations

from ..core.identity import ClientIdentity
from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse


def identity_stage(identity: ClientIdentity) -> Stage:
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        request.context.client_id = identity.of(request)
        return await call_next(request)

    return stage
