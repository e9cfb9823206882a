"""MCP through the gateway (#29): the official SDK client, gateway keys with tool allow-lists,
per-tool limits, and sessions carried on by a second instance, a resumed stream included."""

from __future__ import annotations

import json
import time

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.admin_cli import create_key

pytest_plugins = ["tests.e2e.conftest_mcp"]  # fixtures mcp_server, mcp_gateways, storage_env
pytestmark = pytest.mark.e2e
ALL_TOOLS = {"add", "echo", "shout", "slow_count", "blob"}


class Sdk:
    """The SDK's client session through `gateway` with `key`."""

    def __init__(self, gateway, key: str):
        self.url, self.key = f"{gateway.url}/mcp/tools", key

    async def __aenter__(self) -> ClientSession:
        self._http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.key}"},
                                        timeout=30)
        self._transport = streamable_http_client(self.url, http_client=self._http)
        read, write = await self._transport.__aenter__()
        self._session = ClientSession(read, write)
        session = await self._session.__aenter__()
        await session.initialize()
        return session

    async def __aexit__(self, *exc) -> None:
        await self._session.__aexit__(*exc)
        await self._transport.__aexit__(*exc)
        await self._http.aclose()


async def test_sdk_lists_and_calls_every_tool_with_a_key_for_the_whole_server(
        mcp_gateways, storage_env):
    key = create_key(storage_env, "agents", "--mcp-tools", "tools:*")
    async with Sdk(mcp_gateways[0], key) as session:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == ALL_TOOLS
        added = await session.call_tool("add", {"a": 2, "b": 40})
        assert added.content[0].text == "42"
        progress: list[float] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(done)

        counted = await session.call_tool("slow_count", {"steps": 3, "delay_ms": 50},
                                          progress_callback=on_progress)
        assert counted.content[0].text == "counted to 3"
        assert progress == [1, 2, 3]  # each progress event passed through as it came


async def test_a_key_limited_to_one_tool_sees_and_calls_only_that_tool(
        mcp_gateways, storage_env):
    key = create_key(storage_env, "narrow", "--mcp-tools", "tools:echo")
    async with Sdk(mcp_gateways[1], key) as session:
        listed = await session.list_tools()
        assert [tool.name for tool in listed.tools] == ["echo"]
        echoed = await session.call_tool("echo", {"text": "hi"})
        assert echoed.content[0].text == "hi"
        for name in ("add", "Echo", "echo ", "еcho"):  # another tool, case, space, Cyrillic е
            with pytest.raises(MCPError) as refused:
                await session.call_tool(name, {"a": 1, "b": 2, "text": "x"})
            assert refused.value.error.code == -32602
            assert refused.value.error.data["code"] == "mcp_tool_not_allowed"


def test_a_key_without_mcp_tools_reaches_no_server(mcp_gateways, storage_env):
    key = create_key(storage_env, "models-only")
    answer = httpx.post(f"{mcp_gateways[0].url}/mcp/tools", json=_initialize(1),
                        headers=_headers(key), timeout=10)
    assert answer.status_code == 403
    body = answer.json()
    assert body["error"]["data"]["code"] == "mcp_forbidden" and body["id"] is None
    assert body["error"]["data"]["request_id"] == answer.headers["x-request-id"]


async def test_per_tool_limit_answers_the_protocols_error(mcp_gateways, storage_env):
    key = create_key(storage_env, "loud", "--mcp-tools", "tools:shout,tools:echo")
    async with Sdk(mcp_gateways[0], key) as session:
        for _ in range(2):
            assert (await session.call_tool("shout", {"text": "a"})).content[0].text == "A"
        with pytest.raises(MCPError) as limited:
            await session.call_tool("shout", {"text": "a"})
        assert limited.value.error.data["code"] == "mcp_tool_rate_limited"
        assert (await session.call_tool("echo", {"text": "b"})).content[0].text == "b"


def _headers(key: str, session: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18", **extra}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return headers


def _initialize(rpc_id: int) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}}


def _events(lines) -> list[tuple[str | None, dict]]:
    """(id, message) of each SSE event in the lines read so far."""
    out, event_id, data = [], None, []
    for line in lines:
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            out.append((event_id, json.loads("\n".join(data))))
            event_id, data = None, []
    return out


def _start_session(gateway, key: str) -> str:
    answer = httpx.post(f"{gateway.url}/mcp/tools", json=_initialize(1), headers=_headers(key),
                        timeout=10)
    assert answer.status_code == 200, answer.text
    session = answer.headers["mcp-session-id"]
    assert session.startswith("g1.")  # sealed, not the server's own id
    done = httpx.post(f"{gateway.url}/mcp/tools", headers=_headers(key, session),
                      json={"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout=10)
    assert done.status_code == 202
    return session


def test_a_session_and_its_broken_stream_continue_through_another_instance(
        mcp_gateways, storage_env):
    first, second = mcp_gateways
    key = create_key(storage_env, "roaming", "--mcp-tools", "tools:slow_count,tools:add")
    session = _start_session(first, key)
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "slow_count", "arguments": {"steps": 5, "delay_ms": 300},
        "_meta": {"progressToken": "p7"}}}
    lines: list[str] = []
    with httpx.stream("POST", f"{first.url}/mcp/tools", json=call, timeout=30,
                      headers=_headers(key, session)) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        for line in streamed.iter_lines():
            lines.append(line)
            if sum(m.get("method") == "notifications/progress" for _, m in _events(lines)) == 2:
                break  # the client's connection drops after two progress events
    last_id = [event_id for event_id, _ in _events(lines) if event_id][-1]
    resumed: list[str] = []
    with httpx.stream("GET", f"{second.url}/mcp/tools", timeout=30,
                      headers=_headers(key, session, **{"Last-Event-ID": last_id})) as again:
        assert again.status_code == 200
        for line in again.iter_lines():
            resumed.append(line)
            if any(m.get("id") == 7 for _, m in _events(resumed)):
                break
    messages = [m for _, m in _events(resumed)]
    steps = [m["params"]["progress"] for m in messages if m.get("method")]
    assert steps == [3, 4, 5]  # exactly what the first stream had not delivered
    assert messages[-1]["result"]["content"][0]["text"] == "counted to 5"
    added = httpx.post(f"{second.url}/mcp/tools", headers=_headers(key, session), timeout=10,
                       json={"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                             "params": {"name": "add", "arguments": {"a": 1, "b": 1}}})
    assert "2" in added.text and added.status_code == 200


def test_an_ended_session_is_404_on_every_instance_and_another_key_cannot_use_it(
        mcp_gateways, storage_env):
    first, second = mcp_gateways
    key = create_key(storage_env, "enders", "--mcp-tools", "tools:*")
    other = create_key(storage_env, "thief", "--mcp-tools", "tools:*")
    session = _start_session(first, key)
    ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
    stolen = httpx.post(f"{second.url}/mcp/tools", json=ping, headers=_headers(other, session),
                        timeout=10)
    assert stolen.status_code == 404
    assert stolen.json()["error"]["data"]["code"] == "mcp_session_not_found"
    ended = httpx.delete(f"{second.url}/mcp/tools", headers=_headers(key, session), timeout=10)
    assert ended.status_code == 200
    after = httpx.post(f"{first.url}/mcp/tools", json=ping, headers=_headers(key, session),
                       timeout=10)
    assert after.status_code == 404 and after.json()["id"] == 3


def test_metrics_and_the_request_log_name_the_tool_but_never_its_arguments(
        mcp_gateways, storage_env):
    gateway = mcp_gateways[0]
    key = create_key(storage_env, "logged", "--mcp-tools", "tools:echo")
    session = _start_session(gateway, key)
    secret = "arg-5ecret-4d1f"
    answer = httpx.post(f"{gateway.url}/mcp/tools", headers=_headers(
        key, session, **{"x-request-id": "mcp-log-1"}), timeout=10, json={
        "jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": secret}}})
    assert secret in answer.text
    operator = create_key(storage_env, "ops", "--operator")  # /metrics: the operator scope
    text = httpx.get(f"{gateway.url}/metrics", timeout=10,
                     headers={"authorization": f"Bearer {operator}"}).text
    assert ('gateway_mcp_requests_total{method="tools/call",outcome="ok",server="tools",'
            'tool="echo"}') in text

    def line():
        for raw in gateway.log.read_text(errors="replace").splitlines():
            if '"request_id":"mcp-log-1"' in raw:
                return raw
        return None

    deadline = time.monotonic() + 10  # the line is written once the answer is out
    while (found := line()) is None:
        assert time.monotonic() < deadline, "no request log line"
        time.sleep(0.05)
    entry = json.loads(found[found.index("{"):])
    assert (entry["mcp_server"], entry["mcp_method"], entry["mcp_tool"], entry["backend"]) == \
        ("tools", "tools/call", "echo", "mcp:tools")
    assert secret not in gateway.log.read_text(errors="replace")


def test_an_answer_over_the_event_cap_is_a_json_rpc_error_not_a_flood(mcp_gateways, storage_env):
    # The gateways take at most 64 KiB per answer or event (conftest_mcp); blob sends 256 KiB.
    key = create_key(storage_env, "bulky", "--mcp-tools", "tools:blob")
    session = _start_session(mcp_gateways[1], key)
    answer = httpx.post(f"{mcp_gateways[1].url}/mcp/tools", headers=_headers(key, session),
                        timeout=20, json={"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                          "params": {"name": "blob",
                                                     "arguments": {"kilobytes": 256}}})
    messages = [m for _, m in _events(answer.text.splitlines())]
    assert len(answer.content) < 4096
    assert messages[-1]["id"] == 5
    assert messages[-1]["error"]["data"]["code"] == "mcp_upstream_invalid"
