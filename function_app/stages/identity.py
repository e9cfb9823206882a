"""Name the client once, for every stage after this one: the request limiter, the token limiter,
the cache's per-client partitions and telemetry all read `context.client_id`.

Runs after routing and the tenant auth stage (a gateway key's tenant is then the client) and
before rate limiting; errors raised before it leave `client_id` None.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse


class NamesClients(Protocol):
    """core/identity.py's ClientIdentity, or tenants' TenantIdentity around it."""

    def of(self, request: GatewayRequest) -> str: ...


def identity_stage(identity: NamesClients) -> Stage:
    def stage(request: GatewayRequest, call_next: Handler) -> Awaitable[GatewayResponse]:
        # Not a coroutine: it acts before the next stage only, so the next stage's awaitable
        # is the one awaited (a frame fewer per request, resumed at every wait below).
        request.context.client_id = identity.of(request)
        return call_next(request)

    return stage
