"""Match the path and method against the route table (404 / 405 before any body is read).

The path is judged on its raw, still-encoded form first (core/paths.py: 400 invalid_path), and a
prefix route's upstream path is built from those raw segments, never from the decoded path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping

from ..core.paths import forward_path, parse_path
from ..core.pipeline import Handler
from ..http.messages import GatewayRequest, GatewayResponse
from .routes import MATCH, ROUTE_KINDS, Match, RouteTable


def routing_stage(table: RouteTable) -> RoutingStage:
    return RoutingStage(table)


class RoutingStage:
    """The routing stage; as a Branching stage (core/pipeline.py), it hands each request to the
    chain composed for its route's kind."""

    kinds = ROUTE_KINDS

    def __init__(self, table: RouteTable) -> None:
        self._table = table

    def _route(self, request: GatewayRequest) -> Match:
        safe = parse_path(request.raw_path or request.path)
        request.path = safe.decoded  # what is matched is exactly what is forwarded
        match = self._table.match(safe.decoded, request.method)
        if match.route.is_prefix:
            match = Match(match.route, forward_path(match.route.upstream_path,
                                                    match.route.path[:-2], safe))
        MATCH.set(request.context, match)
        return match

    async def __call__(self, request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        self._route(request)
        return await call_next(request)

    def branch(self, chains: Mapping[str, Handler], other: Handler) -> Handler:
        route = self._route

        def routed(request: GatewayRequest) -> Awaitable[GatewayResponse]:
            # Not a coroutine: the chain's own is the one awaited (a frame fewer per request,
            # resumed at every wait below). A 400/404/405 raises here, at the call, which every
            # stage makes inside the `await` that would have raised it.
            kind = route(request).route.kind
            return (chains[kind] if kind in chains else other)(request)  # no `.get` call

        return routed
