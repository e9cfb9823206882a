"""The upstream step: forward the request to the routed backend and stream the answer back.

It owns everything that happens per attempt (timeouts now; retries and breakers later), so the
stages before it run once per request whatever happens here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from ..core.attempts import send_attempt
from ..core.headers import client_response_headers, strip_function_key, upstream_request_headers
from ..core.models import GatewayRequest, GatewayResponse, Headers
from ..core.pipeline import Handler
from ..core.routes import Match
from ..core.upstream import Upstream, UpstreamRequest


def proxy_handler(upstream: Upstream, backends: Mapping[str, str], connect_timeout_s: float
                  ) -> Handler:
    async def handle(request: GatewayRequest) -> GatewayResponse:
        match: Match = request.context["match"]
        query = strip_function_key(request.query)
        # OpenAI routes have no fixed backend: the OpenAI stage chose one by model.
        base = request.context.get("backend_url") or backends[match.route.backend]
        url = base + match.upstream_path + (f"?{query}" if query else "")
        headers = upstream_request_headers(
            request.headers, client_host=request.client_host, scheme=request.scheme,
            host=request.header("host"), request_id=request.request_id)
        if request.header("accept-encoding") is None:
            # Otherwise the client library would ask for gzip on the client's behalf.
            headers.append(("accept-encoding", "identity"))
        answer = await send_attempt(request.context, upstream.send, UpstreamRequest(
            request.method, url, headers, request.body, connect_timeout_s, match.route.timeout_s))
        body = await complete_body(answer.body, _declared_length(answer.headers))
        return GatewayResponse(answer.status, client_response_headers(answer.headers), body)

    return handle


def _declared_length(headers: Headers) -> int | None:
    for key, value in headers:
        if key.lower() == "content-length" and value.isdigit():
            return int(value)
    return None


async def complete_body(body: AsyncIterator[bytes], length: int | None
                        ) -> bytes | AsyncIterator[bytes]:
    """The body as bytes when its first chunk already completes the declared length, else a
    stream that starts with that chunk.

    Nothing waits longer than it would streamed: the first chunk is sent the moment it is in
    either way. A whole answer skips the streaming machinery, which costs a task group per
    response in Starlette.
    """
    if length is None:
        return body
    first = await anext(body, b"")
    if len(first) >= length:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()  # the relay's finally releases the connection
        return first
    return _prepend(first, body)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
