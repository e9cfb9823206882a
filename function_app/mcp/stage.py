"""The MCP routes, /mcp/{server}: who may reach which tool, then one exchange with the server.

Runs after tenant auth (the key's grant), identity and the request rate limit (the key's own
rps), and before the body stage: it reads the body itself, under MCP_MAX_MESSAGE_BYTES, so every
refusal is a JSON-RPC error. A refused message is never forwarded. Other routes pass through.

POST carries one JSON-RPC message (jsonrpc.py); GET opens the server's stream (Last-Event-ID
resumes one); DELETE ends the session. The Mcp-Session-Id a client holds is sealed (sessions.py),
so any instance can carry a session on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from function_app.ratelimit.headers import rate_limit_headers, retry_after
from function_app.ratelimit.limits import Decision, ScopedLimit

from ..core.clock import Clock
from ..core.errors import GatewayError, PayloadTooLarge
from ..core.pipeline import Handler, Stage
from ..core.upstream import Upstream, UpstreamRequest
from ..http.context import Fact
from ..http.forwarding import upstream_request_headers
from ..http.headers import Headers
from ..http.messages import GatewayRequest, GatewayResponse, Unread
from ..routing.routes import MATCH
from ..tenants.access import GRANT
from .access import OPEN, ToolGrant, allowed
from .config import McpServer
from .credentials import Credentials
from .errors import (
    McpForbidden,
    McpMessageTooLarge,
    McpRateLimited,
    McpServerNotFound,
    McpSessionNotFound,
    McpToolNotAllowed,
    McpUpstreamBroken,
)
from .jsonrpc import Message, parse_message
from .relay import JSON, SSE, answer_headers, kind_of, read_json, relay_stream
from .sessions import SessionSeal

MCP_KIND = "mcp"
PREFIX = "/mcp/"
CLIENT_HEADERS = ("accept", "mcp-protocol-version", "last-event-id")


class Acquirer(Protocol):
    async def acquire(self, scoped: Sequence[ScopedLimit], cost: float = 1) -> Decision: ...


@dataclass
class McpCall:
    """What telemetry and the request log say about one MCP request (never the arguments)."""

    server: str
    method: str = "-"
    tool: str | None = None
    outcome: str = "ok"


MCP_CALL: Fact[McpCall] = Fact("mcp")  # MCP routes: server, method, tool, outcome


@dataclass(frozen=True)
class McpLimits:
    max_message_bytes: int
    max_event_bytes: int
    stream_timeout_s: float
    connect_timeout_s: float = 5.0


@dataclass
class McpRoutes:
    servers: dict[str, McpServer]
    seal: SessionSeal
    upstream: Upstream
    credentials: Credentials
    clock: Clock
    limits: McpLimits
    keys_required: bool  # GATEWAY_AUTH is on: a request without a key reaches no server
    limiter: Acquirer | None = None


def mcp_stage(routes: McpRoutes) -> Stage:
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        if MATCH.need(request.context).route.kind != MCP_KIND:
            return await call_next(request)
        return await handle(routes, request)

    return stage


async def handle(routes: McpRoutes, request: GatewayRequest) -> GatewayResponse:
    server = _server(routes, request.path)
    call = McpCall(server.name, request.method)
    MCP_CALL.set(request.context, call)
    request.context.served_by = f"mcp:{server.name}"  # telemetry's backend label
    try:
        grant, prefix = _grant(routes, request, server)
        upstream_sid = _session(routes, request, server, prefix)
        message = await _message(routes, request) if request.method == "POST" else None
        if message is not None:
            call.method, call.tool = message.method or "response", message.tool
            await _check_call(routes, request, server, grant, message)
        response = await _exchange(routes, request, server, upstream_sid, message)
        return await _answer(routes, request, server, grant, prefix, message, response,
                             upstream_sid)
    except GatewayError as error:  # refusals, and the upstream's timeouts and failures
        call.outcome = error.code.removeprefix("mcp_")
        raise


def _server(routes: McpRoutes, path: str) -> McpServer:
    name = path[len(PREFIX):] if path.startswith(PREFIX) else ""
    server = routes.servers.get(name)
    if server is None:
        raise McpServerNotFound()
    return server


def _grant(routes: McpRoutes, request: GatewayRequest, server: McpServer
           ) -> tuple[ToolGrant | None, str]:
    """The key's tool grant and prefix; OPEN when keys are off. 403 if the key (or its
    absence) reaches no tool of `server`."""
    key_grant = GRANT.get(request.context)
    if key_grant is None:
        if routes.keys_required:
            raise McpForbidden("MCP servers are reached with a gateway API key that lists "
                               "their tools (keys ... --mcp-tools SERVER:TOOL).")
        return OPEN, ""
    tools = ToolGrant.of(key_grant.key.mcp_tools)
    if not tools.reaches(server.name):
        raise McpForbidden(f"The API key may not use the MCP server {server.name}.")
    return tools, key_grant.key.prefix


def _session(routes: McpRoutes, request: GatewayRequest, server: McpServer,
             prefix: str) -> str | None:
    token = request.headers.get("mcp-session-id")
    if token is None:
        return None
    return routes.seal.open(token, server.name, prefix, routes.clock.now()).upstream_id


async def _message(routes: McpRoutes, request: GatewayRequest) -> Message:
    body, cap = request.body, routes.limits.max_message_bytes
    declared = request.headers.get("content-length")
    try:
        if declared and declared.isdigit() and int(declared) > cap:
            raise PayloadTooLarge()
        if isinstance(body, Unread):
            body = request.body = await body.read(cap)
    except PayloadTooLarge:
        raise McpMessageTooLarge() from None
    if len(body) > cap:
        raise McpMessageTooLarge()
    return parse_message(body)


async def _check_call(routes: McpRoutes, request: GatewayRequest, server: McpServer,
                      grant: ToolGrant | None, message: Message) -> None:
    """tools/call: the key may call the tool (exact name), and the tool's limit admits it."""
    tool = message.tool
    if tool is None:
        return
    if not allowed(grant, server.name, tool):
        raise McpToolNotAllowed(f"Unknown tool: {tool[:128]!r} (this API key may not call "
                                "it).", rpc_id=message.rpc_id)
    limit = server.limit_for(tool)
    if limit is None or routes.limiter is None:
        return
    key_grant = GRANT.get(request.context)  # per key when there is one, else per client
    caller = f"key:{key_grant.key.prefix}" if key_grant is not None else request.context.client
    scoped = [ScopedLimit("mcp_tool", f"{server.name}:{tool}|{caller}", limit)]
    decision = await routes.limiter.acquire(scoped, 1)
    if not decision.allowed:
        headers = dict([*rate_limit_headers(decision), ("Retry-After", retry_after(decision))])
        raise McpRateLimited(f"The tool {tool} of {server.name} is limited to "
                             f"{limit.rate:g} calls per second per key.",
                             rpc_id=message.rpc_id, headers=headers)


async def _exchange(routes: McpRoutes, request: GatewayRequest, server: McpServer,
                    upstream_sid: str | None, message: Message | None):
    # Only the protocol's own headers pass (never the client's credentials or cookies), plus
    # X-Forwarded-* (as the forwarded stage left them) and X-Request-ID, as on every route.
    headers = upstream_request_headers(
        Headers((n, v) for n, v in request.headers if n.startswith("x-forwarded-")),
        client_host=request.client_host, scheme=request.scheme,
        host=request.headers.get("host"), request_id=request.request_id)
    headers.extend((n, v) for n, v in request.headers if n in CLIENT_HEADERS)
    if message is not None:
        headers.set("content-type", JSON)
        if headers.get("accept") is None:
            headers.set("accept", f"{JSON}, {SSE}")
    if upstream_sid is not None:
        headers.set("mcp-session-id", upstream_sid)
    await routes.credentials.apply(server, headers)
    limits = routes.limits
    return await routes.upstream.send(UpstreamRequest(
        request.method, server.url, headers, message.encoded() if message else b"",
        limits.connect_timeout_s, limits.stream_timeout_s))


async def _answer(routes: McpRoutes, request: GatewayRequest, server: McpServer,
                  grant: ToolGrant | None, prefix: str, message: Message | None, response,
                  upstream_sid: str | None) -> GatewayResponse:
    status, kind = response.status, kind_of(response)
    rpc_id = message.rpc_id if message is not None and message.is_request else None
    if status == 404 and upstream_sid is not None:
        await _discard(response)
        raise McpSessionNotFound(rpc_id=rpc_id)  # ended or forgotten upstream
    sid = response.headers.get("mcp-session-id")
    sealed = routes.seal.seal(server.name, sid, prefix, routes.clock.now()) if sid else None
    headers = answer_headers(response, sealed, request.request_id)
    tool_allowed = lambda tool: allowed(grant, server.name, tool)  # noqa: E731
    limits = routes.limits
    if kind == SSE and status < 300:
        call = MCP_CALL.get(request.context)
        body = relay_stream(response, limits.max_event_bytes, tool_allowed, rpc_id,
                            request.request_id, lambda outcome: _stream_done(call, outcome))
        return GatewayResponse(status, headers, body)
    if kind == JSON:
        body = await read_json(response, limits.max_event_bytes, tool_allowed)
        return GatewayResponse(status, headers, body)
    await _discard(response)
    if status >= 400 or kind not in ("", JSON):
        error = McpUpstreamBroken(rpc_id=rpc_id)
        error.status = status if status in (400, 405, 406, 415) else 502
        raise error
    return GatewayResponse(status, headers, b"")


def _stream_done(call: McpCall | None, outcome: str) -> None:
    if call is not None and outcome != "ok":
        call.outcome = outcome


async def _discard(response) -> None:
    close = getattr(response.body, "aclose", None)
    if close is not None:
        await close()
