"""Match the path and method against the route table (404 / 405 before any body is read).

The path is judged on its raw, still-encoded form first (core/paths.py: 400 invalid_path), and a
prefix route's upstream path is built from those raw segments, never from the decoded path.
"""

from __future__ import annotations

from ..core.paths import forward_path, parse_path
from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse
from .routes import MATCH, Match, RouteTable


def routing_stage(table: RouteTable) -> Stage:
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        safe = parse_path(request.raw_path or request.path)
        request.path = safe.decoded  # what is matched is exactly what is forwarded
        match = table.match(safe.decoded, request.method)
        if match.route.is_prefix:
            match = Match(match.route, forward_path(match.route.upstream_path,
                                                    match.route.path[:-2], safe))
        MATCH.set(request.context, match)
        return await call_next(request)

    return stage
