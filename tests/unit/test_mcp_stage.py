"""The MCP stage over the in-memory upstream (#29): what is forwarded, what never is, sealed
sessions, filtered answers, and bounded streams."""

from __future__ import annotations

import asyncio
import json

import pytest

from function_app.core.errors import GatewayError
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest
from function_app.mcp.config import McpServer
from function_app.mcp.credentials import Credentials, NoTokens
from function_app.mcp.errors import McpError, mcp_error_response
from function_app.mcp.sessions import SessionSeal
from function_app.mcp.stage import MCP_CALL, McpLimits, McpRoutes, handle
from function_app.ratelimit.limits import Decision, Limit
from function_app.routing.routes import MATCH, parse_routes
from function_app.tenants.access import GRANT, Grant
from function_app.tenants.records import KeyRecord
from tests.support.clock import FakeClock
from tests.support.upstream_memory import Fail, MemoryUpstream, Reply

TABLE = parse_routes(None, {"python": "http://p", "node": "http://n"}, 30)
SERVERS = {"tools": McpServer("tools", "http://mcp.internal:9/mcp", "key", "upstream-secret",
                              tool_limits={"shout": Limit(1, 1)}),
           "open": McpServer("open", "http://open.internal:9/mcp")}
SSE = [("content-type", "text/event-stream")]
JSON = [("content-type", "application/json")]
TOOLS = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "echo"}, {"name": "add"}]}}


class DenyAll:
    def __init__(self):
        self.calls = []

    async def acquire(self, scoped, cost=1):
        self.calls.append(scoped)
        return Decision(False, scope="mcp_tool", limit=Limit(1, 1), retry_after_s=7)


def routes(upstream, clock=None, limiter=None, keys=True, event_cap=4096, timeout=30.0):
    return McpRoutes(SERVERS, SessionSeal(bytes(32), 3600), upstream, Credentials(NoTokens()),
                     clock or FakeClock(), McpLimits(2048, event_cap, timeout), keys, limiter)


def request(body: dict | bytes | None = None, method="POST", server="tools", tools=("tools:echo",),
            headers=()) -> GatewayRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    path = f"/mcp/{server}"
    req = GatewayRequest(method, path, "", Headers([("authorization", "Bearer client-own"),
                                                   *headers]), raw, "127.0.0.1")
    MATCH.set(req.context, TABLE.match(path, method))
    req.context.client_id = "tenant:t"
    if tools is not None:
        GRANT.set(req.context, Grant(KeyRecord("h", "abcd2345", "t", "n", 0, mcp_tools=tools)))
    return req


def call(tool: str, rpc_id=9) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call",
            "params": {"name": tool, "arguments": {"x": 1}}}


async def refusal(routes_, req) -> McpError:
    with pytest.raises(McpError) as caught:
        await handle(routes_, req)
    return caught.value


async def read(body) -> bytes:
    return body if isinstance(body, bytes) else b"".join([c async for c in body])


async def test_an_allowed_call_is_forwarded_with_the_servers_key_not_the_clients():
    upstream = MemoryUpstream(Reply(200, JSON, [b'{"jsonrpc":"2.0","id":9,"result":{}}']))
    answer = await handle(routes(upstream), request(call("echo")))
    assert answer.status == 200 and json.loads(await read(answer.body))["id"] == 9
    sent = upstream.requests[0]
    assert sent.url == "http://mcp.internal:9/mcp"
    assert sent.headers.get("authorization") == "Bearer upstream-secret"
    assert json.loads(sent.body)["params"]["name"] == "echo"


@pytest.mark.parametrize("tool", ["add", "Echo", "еcho", "echo\u200b", "tools:echo", "*"])
async def test_a_call_of_another_tool_is_refused_and_never_forwarded(tool):
    upstream = MemoryUpstream()
    error = await refusal(routes(upstream), request(call(tool)))
    assert (error.code, error.rpc_code, error.rpc_id) == ("mcp_tool_not_allowed", -32602, 9)
    assert upstream.requests == []


@pytest.mark.parametrize(("req", "code", "status"), [
    (request(call("echo"), tools=None), "mcp_forbidden", 403),
    (request(call("echo"), tools=("files:*",)), "mcp_forbidden", 403),
    (request(call("echo"), tools=()), "mcp_forbidden", 403),
    (request(call("echo"), server="nope"), "mcp_server_not_found", 404),
    (request(b"x" * 4096), "mcp_message_too_large", 413),
    (request(b"[" + json.dumps(call("echo")).encode() + b"]"), "mcp_batch_not_supported", 400),
    (request({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage"}),
     "mcp_method_not_found", 200),
    (request(call("echo"), headers=[("mcp-session-id", "g1.forged")]),
     "mcp_session_not_found", 404),
])
async def test_hostile_or_unentitled_requests_are_refused_before_any_upstream_call(
        req, code, status):
    upstream = MemoryUpstream()
    error = await refusal(routes(upstream), req)
    assert (error.code, error.status) == (code, status)
    assert upstream.requests == []


async def test_without_gateway_keys_every_configured_tool_is_open():
    upstream = MemoryUpstream(Reply(200, JSON, [json.dumps(TOOLS).encode()]))
    answer = await handle(routes(upstream, keys=False), request(call("add"), tools=None))
    assert len(json.loads(await read(answer.body))["result"]["tools"]) == 2


async def test_a_per_tool_limit_refuses_with_retry_after_and_forwards_nothing():
    upstream, limiter = MemoryUpstream(), DenyAll()
    req = request(call("shout"), tools=("tools:*",))
    error = await refusal(routes(upstream, limiter=limiter), req)
    assert (error.code, error.status, error.headers["Retry-After"]) == \
        ("mcp_tool_rate_limited", 429, "7")
    assert limiter.calls[0][0].key == "tools:shout|key:abcd2345" and upstream.requests == []
    rendered = mcp_error_response(error, "req-1")
    body = json.loads(rendered.body)
    assert (rendered.status, body["id"], body["error"]["data"]) == \
        (429, 9, {"code": "mcp_tool_rate_limited", "request_id": "req-1"})


async def test_tools_lists_are_filtered_in_json_and_in_sse_answers():
    upstream = MemoryUpstream(Reply(200, JSON, [json.dumps(TOOLS).encode()]))
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    answer = await handle(routes(upstream), request(listing))
    assert json.loads(await read(answer.body))["result"]["tools"] == [{"name": "echo"}]
    event = b"id: 4\nevent: message\ndata: " + json.dumps(TOOLS).encode() + b"\n\n"
    upstream.respond = Reply(200, SSE, [event[:10], event[10:]])
    answer = await handle(routes(upstream), request(listing))
    streamed = (await read(answer.body)).decode()
    assert streamed.startswith("id: 4\nevent: message\n") and '"add"' not in streamed


async def test_the_upstream_session_id_is_sealed_and_only_the_upstream_one_is_forwarded():
    clock = FakeClock()
    upstream = MemoryUpstream(Reply(200, [*JSON, ("mcp-session-id", "up-1")], [b"{}"]))
    r = routes(upstream, clock)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    sealed = (await handle(r, request(init))).headers.get("mcp-session-id")
    assert sealed.startswith("g1.") and "up-1" not in sealed
    await handle(r, request(call("echo"), headers=[("mcp-session-id", sealed)]))
    assert upstream.requests[-1].headers.get("mcp-session-id") == "up-1"
    clock.set(clock.now() + 3600)  # the id's lifetime is over
    error = await refusal(r, request(call("echo"), headers=[("mcp-session-id", sealed)]))
    assert error.status == 404 and len(upstream.requests) == 2


async def test_a_session_the_server_ended_is_the_protocols_404():
    upstream = MemoryUpstream(Reply(200, [*JSON, ("mcp-session-id", "up-1")], [b"{}"]))
    r = routes(upstream)
    sealed = (await handle(r, request({"jsonrpc": "2.0", "id": 1, "method": "initialize"}))
              ).headers.get("mcp-session-id")
    upstream.respond = Reply(404, JSON, [b'{"error": "Session not found"}'])
    error = await refusal(r, request(call("echo", 3), headers=[("mcp-session-id", sealed)]))
    assert (error.status, error.code, error.rpc_id) == (404, "mcp_session_not_found", 3)


async def test_an_event_over_the_cap_ends_the_stream_with_an_error_for_the_waiting_call():
    huge = b"data: " + b"x" * 10_000 + b"\n\n"
    upstream = MemoryUpstream(Reply(200, SSE, [b"id: 1\ndata: {}\n\n", huge[:5000],
                                               huge[5000:], b"id: 3\ndata: {}\n\n"]))
    answer = await handle(routes(upstream, event_cap=1024), request(call("echo")))
    text = (await read(answer.body)).decode()
    events = [e for e in text.split("\n\n") if e]
    assert events[0] == "id: 1\ndata: {}"
    last = json.loads(events[1].split("data: ", 1)[1])
    assert last["id"] == 9 and last["error"]["data"]["code"] == "mcp_upstream_invalid"
    assert len(events) == 2 and upstream.open == 0


async def test_a_stream_that_never_ends_is_cut_at_the_deadline_and_closed():
    async def forever():
        n = 0
        while True:
            n += 1
            yield f"id: {n}\ndata: {{}}\n\n".encode()
            await asyncio.sleep(0.01)

    upstream = MemoryUpstream(lambda _: Reply(200, SSE, forever()))
    r = routes(upstream, timeout=0.3)
    answer = await handle(r, request(None, method="GET"))
    received = await read(answer.body)  # ends: the deadline closed it
    assert received.startswith(b"id: 1\n") and upstream.open == 0
    assert answer.status == 200


async def test_a_notifications_202_passes_with_no_body_whatever_its_content_type():
    # The SDK's server answers a notification 202 with content-type application/json and no
    # body; reading that as a JSON answer once turned it into a 502.
    upstream = MemoryUpstream(Reply(202, JSON, []))
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    answer = await handle(routes(upstream), request(note))
    assert (answer.status, await read(answer.body)) == (202, b"")


async def test_an_unreachable_server_is_recorded_as_the_calls_outcome():
    req = request(call("echo"))
    with pytest.raises(GatewayError) as caught:
        await handle(routes(MemoryUpstream(Fail("refused"))), req)
    assert caught.value.status == 502
    recorded = MCP_CALL.need(req.context)
    assert (recorded.tool, recorded.outcome) == ("echo", "upstream_unavailable")


def test_errors_of_earlier_stages_on_an_mcp_route_are_json_rpc_errors_too():
    from function_app.stages.errors import render
    from function_app.tenants.errors import InvalidApiKey

    req = request(call("echo"))
    req.request_id = "rid-1"
    answer = render(InvalidApiKey(), req)
    body = json.loads(answer.body)
    assert answer.status == 401 and body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["data"]["request_id"] == "rid-1"
    assert body["error"]["data"]["code"] == InvalidApiKey.code
