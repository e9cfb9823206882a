"""MCP's pure parts (#29): JSON-RPC checks, sealed sessions, tool grants, SSE parsing and the
tools filter, MCP_SERVERS and the admin CLI's --mcp-tools."""

from __future__ import annotations

import base64
import io
import json

import pytest

from function_app.adapters.keystore_memory import MemoryKeyStore
from function_app.admin.cli import main as admin_main
from function_app.mcp.access import ToolGrant, parse_entry
from function_app.mcp.config import parse_servers
from function_app.mcp.errors import INVALID_PARAMS, METHOD_NOT_FOUND, PARSE_ERROR, McpError
from function_app.mcp.filtering import filter_text
from function_app.mcp.jsonrpc import parse_message
from function_app.mcp.sessions import SessionSeal, session_key
from function_app.mcp.sse import EventTooLarge, SseParser
from function_app.settings.load import SettingsError, load_settings

NOW = 1_700_000_000.0


def rpc(**fields) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **fields}).encode()


def refused(body: bytes) -> McpError:
    with pytest.raises(McpError) as caught:
        parse_message(body)
    return caught.value


def test_a_tools_call_is_parsed_and_forwarded_as_the_gateway_read_it():
    # Two `name` keys: Python keeps the last; the server must see that one, not the first.
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","name":"echo"}}'
    message = parse_message(body)
    assert message.tool == "echo" and message.is_request
    assert json.loads(message.encoded())["params"] == {"name": "echo"}
    assert message.encoded().count(b'"name"') == 1


@pytest.mark.parametrize(("body", "code", "gateway_code"), [
    (b"[" + rpc(id=1, method="ping") + b"]", -32600, "mcp_batch_not_supported"),
    (b"{not json", PARSE_ERROR, "mcp_parse_error"),
    (b'"just a string"', -32600, "mcp_invalid_request"),
    (b"[" * 100 + b"]" * 100, -32600, "mcp_batch_not_supported"),
    (b'{"a":' * 100 + b"1" + b"}" * 100, PARSE_ERROR, "mcp_parse_error"),
    (rpc(id=1, method="tools/destroy"), METHOD_NOT_FOUND, "mcp_method_not_found"),
    (rpc(method="notifications/anything"), METHOD_NOT_FOUND, "mcp_method_not_found"),
    (rpc(id=True, method="ping"), -32600, "mcp_invalid_request"),
    (rpc(id=1.5, method="ping"), -32600, "mcp_invalid_request"),
    (json.dumps({"id": 1, "method": "ping"}).encode(), -32600, "mcp_invalid_request"),
    (rpc(id=1, method="tools/call", params={"name": 7}), INVALID_PARAMS, "mcp_invalid_request"),
    (rpc(id=1, method="tools/call", params=["echo"]), INVALID_PARAMS, "mcp_invalid_request"),
    (rpc(id=1, method="tools/call"), INVALID_PARAMS, "mcp_invalid_request"),
    (rpc(id=1), -32600, "mcp_invalid_request"),
    (rpc(id=1, result={}, error={}), -32600, "mcp_invalid_request"),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","x":"\\ud800"}', PARSE_ERROR, "mcp_parse_error"),
])
def test_malformed_messages_get_their_json_rpc_error(body, code, gateway_code):
    error = refused(body)
    assert (error.rpc_code, error.code) == (code, gateway_code)


def test_an_unknown_method_error_answers_the_request_id():
    assert refused(rpc(id="abc", method="admin/shell")).rpc_id == "abc"


def test_a_client_response_to_a_server_request_is_accepted():
    message = parse_message(rpc(id=5, result={"roots": []}))
    assert message.method is None and not message.is_request


def seal(ttl: float = 60) -> SessionSeal:
    return SessionSeal(bytes(32), ttl)


def test_a_sealed_session_opens_anywhere_with_the_same_key_until_it_expires():
    token = seal().seal("tools", "upstream-123", "abcd2345", NOW)
    assert "upstream-123" not in token and token.startswith("g1.")
    assert SessionSeal(bytes(32), 60).open(token, "tools", "abcd2345", NOW + 59).upstream_id \
        == "upstream-123"
    with pytest.raises(McpError) as expired:
        seal().open(token, "tools", "abcd2345", NOW + 60)
    assert expired.value.status == 404


@pytest.mark.parametrize("change", ["server", "key", "other-seal", "flipped", "garbage", "long"])
def test_a_session_id_is_404_on_another_server_key_seal_or_when_altered(change):
    token = seal().seal("tools", "u1", "abcd2345", NOW)
    server, key, opener = "tools", "abcd2345", seal()
    if change == "server":
        server = "other"
    elif change == "key":
        key = "zzzz2345"
    elif change == "other-seal":
        opener = SessionSeal(bytes([1]) * 32, 60)
    elif change == "flipped":
        token = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    elif change == "garbage":
        token = "g1.%%%%"
    else:
        token = "g1." + "A" * 5000
    with pytest.raises(McpError) as caught:
        opener.open(token, server, key, NOW)
    assert caught.value.code == "mcp_session_not_found"


def test_the_session_key_setting_is_32_bytes_of_base64():
    assert session_key("") is None
    assert session_key(base64.b64encode(bytes(32)).decode()) == bytes(32)
    for bad in ("not base64!", base64.b64encode(bytes(16)).decode()):
        with pytest.raises(ValueError):
            session_key(bad)
    with pytest.raises(SettingsError, match="MCP_SESSION_KEY"):
        load_settings({"MCP_SESSION_KEY": "c2hvcnQ="})


def test_tool_grants_compare_names_exactly():
    grant = ToolGrant.of(["tools:echo", "files:*", "bad entry", "x:"])
    assert grant.may_call("tools", "echo") and grant.may_call("files", "anything")
    for server, tool in (("tools", "Echo"), ("tools", "еcho"), ("tools", "echo "),
                         ("tools", "ECHO"), ("tools", "ｅcho"), ("other", "echo")):
        assert not grant.may_call(server, tool)
    assert not grant.reaches("x") and not ToolGrant.of([]).reaches("tools")


@pytest.mark.parametrize("entry", ["tools", "tools:", ":echo", "tools:еcho", "to ols:echo",
                                   "tools:ec*ho", "tools:" + "a" * 129])
def test_malformed_tool_entries_are_refused(entry):
    with pytest.raises(ValueError):
        parse_entry(entry)


def test_sse_events_are_cut_at_blank_lines_whatever_the_chunks_and_line_endings():
    parser = SseParser(1024)
    stream = b"id: 1\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\nid: 2\ndata: x\ndata: y\n\n"
    events = [e for i in range(len(stream)) for e in parser.feed(stream[i:i + 1])]
    assert [e.data for e in events] == ['{"a":1}', "x\ny"]
    assert events[1].with_data("z") == b"id: 2\ndata: z\n\n"
    assert not parser.pending


def test_an_event_past_the_cap_stops_the_parser_with_bounded_memory():
    parser = SseParser(100)
    with pytest.raises(EventTooLarge):
        for _ in range(10):
            parser.feed(b"data: " + b"x" * 30)


def test_tools_lists_are_filtered_in_any_result_and_re_encoded():
    text = json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"tools": [
        {"name": "echo"}, {"name": "add"}, {"name": 5}, "junk"], "nextCursor": "c"}})
    out = json.loads(filter_text(text, lambda name: name == "echo"))
    assert out["result"] == {"tools": [{"name": "echo"}], "nextCursor": "c"}
    untouched = '{"jsonrpc": "2.0", "method": "notifications/progress"}'
    assert json.loads(filter_text(untouched, lambda name: False)) == json.loads(untouched)


def test_mcp_servers_parse_urls_objects_keys_and_limits():
    servers = parse_servers({"a": "http://127.0.0.1:1/mcp", "b": {
        "url": "https://b.example/mcp", "auth": "key", "key_setting": "B_KEY",
        "header": "X-Api-Key", "tool_limits": {"*": {"rps": 2}, "slow": {"rps": 1, "burst": 3}}},
        "c": {"url": "https://c.example", "auth": "entra", "scope": "api://c/.default"}},
        {"B_KEY": "s3cret"})
    assert servers["a"].auth == "none" and servers["b"].key == "s3cret"
    assert servers["b"].header == "x-api-key" and "s3cret" not in repr(servers["b"])
    assert servers["b"].limit_for("slow").burst == 3 and servers["b"].limit_for("x").rate == 2
    assert servers["a"].limit_for("x") is None


@pytest.mark.parametrize(("spec", "named"), [
    ({"b": {"url": "http://x", "auth": "key", "key_setting": "MISSING"}}, "MISSING"),
    ({"b": {"url": "http://x", "auth": "entra"}}, "scope"),
    ({"b": {"url": "ftp://x"}}, "http"),
    ({"b c": "http://x"}, "server name"),
    ({"b": {"url": "http://x", "auth": "magic"}}, "auth"),
    ({"b": {"url": "http://x", "tool_limits": {"t": 5}}}, "tool_limits"),
])
def test_bad_mcp_servers_stop_start_up_naming_the_problem(spec, named):
    with pytest.raises(SettingsError, match="MCP_SERVERS") as caught:
        load_settings({"MCP_SERVERS": json.dumps(spec)})
    assert named in str(caught.value)


async def test_the_cli_stores_checked_mcp_tools_and_refuses_bad_ones():
    store, out = MemoryKeyStore(), io.StringIO()
    argv = ["keys", "create", "--tenant", "t", "--name", "n", "--mcp-tools",
            "tools:echo, files:*"]
    assert await admin_main(argv, {}, out=out, store=store, now=lambda: NOW) == 0
    record = (await store.list_keys())[0]
    assert record.mcp_tools == ("tools:echo", "files:*")
    bad = [*argv[:-1], "tools:Еcho"]  # a Cyrillic Е: never stored, never matched
    again = MemoryKeyStore()
    assert await admin_main(bad, {}, out=out, store=again, now=lambda: NOW) == 2
    assert await again.list_keys() == []


async def test_the_cli_updates_and_shows_a_keys_mcp_tools():
    store, out = MemoryKeyStore(), io.StringIO()
    create = ["keys", "create", "--tenant", "t", "--name", "n"]
    assert await admin_main(create, {}, out=out, store=store, now=lambda: NOW) == 0
    prefix = (await store.list_keys())[0].prefix
    assert (await store.list_keys())[0].mcp_tools == ()  # no MCP server unless given
    update = ["keys", "update", prefix, "--mcp-tools", "tools:add"]
    assert await admin_main(update, {}, out=out, store=store, now=lambda: NOW) == 0
    assert (await store.list_keys())[0].mcp_tools == ("tools:add",)
    shown = io.StringIO()
    assert await admin_main(["keys", "show", prefix], {}, out=shown, store=store,
                            now=lambda: NOW) == 0
    assert "mcp tools           tools:add" in shown.getvalue()
