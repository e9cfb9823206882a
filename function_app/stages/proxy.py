"""The upstream step: forward the request to the routed backend and stream the answer back.

It owns everything that happens per attempt (timeouts now; retries and breakers later), so the
stages before it run once per request whatever happens here.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..core.headers import client_response_headers, strip_function_key, upstream_request_headers
from ..core.models import GatewayRequest, GatewayResponse
from ..core.pipeline import Handler
from ..core.routes import Match
from ..core.upstream import Upstream, UpstreamRequest


def proxy_handler(upstream: Upstream, backends: Mapping[str, str], connect_timeout_s: float
                  ) -> Handler:
    async def handle(request: GatewayRequest) -> GatewayResponse:
        match: Match = request.context["match"]
        query = strip_function_key(request.query)
        url = backends[match.route.backend] + match.upstream_path + (f"?{query}" if query else "")
        headers = upstream_request_headers(
            request.headers, client_host=request.client_host, scheme=request.scheme,
            host=request.header("host"), request_id=request.request_id)
        if request.header("accept-encoding") is None:
            # Otherwise the client library would ask for gzip on the client's behalf.
            headers.append(("accept-encoding", "identity"))
        answer = await upstream.send(UpstreamRequest(
            request.method, url, headers, request.body, connect_timeout_s, match.route.timeout_s))
        return GatewayResponse(answer.status, client_response_headers(answer.headers), answer.body)

    return handle
