"""Issue 14's cases against the real stack: raw requests through the local host, a raw echo
backend that records every target it receives, and the gateway's own log."""

import asyncio
import json

import httpx
import pytest

from function_app.core.paths import stays_under
from tests.support.azurite import azurite_fixture
from tests.support.rawhttp import Connection, build

from .conftest import ECHO_UPSTREAM, FUZZ_SECRETS, start_gateway

pytestmark = pytest.mark.e2e
JSON = [(b"content-type", b"application/json")]


def recorded(echo_backend) -> list[dict]:
    if not echo_backend.record.exists():
        return []
    return [json.loads(line) for line in echo_backend.record.read_text().splitlines()]


async def send(gateway, method: str, target: bytes, headers=(), body: bytes = b""):
    connection = Connection(gateway.port)
    try:
        return await connection.exchange(build(method, target, list(headers), body))
    finally:
        await connection.close()


@pytest.mark.parametrize("target", [
    b"/echo/a/../../admin", b"/echo/%2e%2e/%2e%2e/admin", b"/echo/..%2f..%2fadmin",
    b"/echo/x%3Fcode=SMUGGLED", b"/echo/a%2fb", b"/echo/a%00b", b"/echo/a%0db",
])
async def test_no_path_escapes_its_route(hostile_gateway, echo_backend, target):
    before = len(recorded(echo_backend))
    response = await send(hostile_gateway, "GET", target)
    assert response.status == 400, response.body
    assert response.error_code() == "invalid_path"
    assert len(recorded(echo_backend)) == before


async def test_what_is_forwarded_stays_encoded_and_under_the_prefix(hostile_gateway,
                                                                    echo_backend):
    response = await send(hostile_gateway, "GET", b"/echo/a%20b/v1.2?x=1")
    assert response.status == 200
    target = json.loads(response.body)["target"]
    assert target == ECHO_UPSTREAM + "/a%20b/v1.2?x=1"
    assert stays_under(target.split("?")[0], ECHO_UPSTREAM)


async def test_the_function_key_is_never_forwarded_in_any_spelling(hostile_gateway):
    key = FUZZ_SECRETS["function_key"].encode()
    query = b"CODE=" + key + b"&Code=" + key + b"&%63ode=" + key + b"&c%6Fde=" + key + b"&k=1"
    response = await send(hostile_gateway, "GET", b"/echo/x?" + query,
                          [(b"x-functions-key", key)])
    seen = json.loads(response.body)
    assert seen["target"] == ECHO_UPSTREAM + "/x?k=1"
    assert "x-functions-key" not in seen["headers"]


async def test_forwarded_headers_from_the_client_are_replaced(hostile_gateway):
    response = await send(hostile_gateway, "GET", b"/echo/x", [
        (b"x-forwarded-for", b"4.4.4.4"), (b"x-forwarded-host", b"evil.example"),
        (b"x-forwarded-proto", b"https")])
    headers = json.loads(response.body)["headers"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"] == "gateway.test"
    assert headers["x-forwarded-proto"] == "http"


async def test_rotating_x_forwarded_for_does_not_escape_the_client_limit(backends, echo_backend,
                                                                         log_dir):
    routes = [{"path": "/echo/*", "methods": ["GET"], "backend": "echo",
               "upstream_path": ECHO_UPSTREAM}]
    gateway = start_gateway(log_dir, "xff-gateway", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
        "GATEWAY_BACKENDS": json.dumps({"echo": echo_backend.url}),
        "GATEWAY_ROUTES": json.dumps(routes), "CLIENT_RPS": "0.01", "CLIENT_BURST": "2"})
    try:
        statuses = [(await send(gateway, "GET", b"/echo/x",
                                [(b"x-forwarded-for", f"10.9.{i}.1".encode())])).status
                    for i in range(20)]
    finally:
        gateway.stop()
    assert statuses.count(200) == 2 and statuses.count(429) == 18


@pytest.mark.parametrize("target, body", [
    (b"/infer/python", b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    (b"/infer/python", b'{"prompt": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
    (b"/v1/chat/completions", b'{"model": "sim-python", "messages": [{"role": "user", '
     b'"content": "hi"}], "tools": ' + b"[" * 980 + b"{}" + b"]" * 980 + b"}"),
    (b"/v1/completions", b'{"model": "sim-python", "prompt": ' + b"[" * 900 + b'"x"'
     + b"]" * 900 + b"}"),
])
async def test_deep_json_is_a_400(hostile_gateway, target, body):
    response = await send(hostile_gateway, "POST", target, JSON, body)
    assert response.status == 400
    assert response.error_code() == "json_too_deep"


async def test_non_ascii_header_bytes_are_not_a_500(hostile_gateway):
    response = await send(hostile_gateway, "GET", b"/echo/x", [(b"x-bad", b"\xff\xfe caf\xe9")])
    assert response.status == 200
    assert "x-bad" in json.loads(response.body)["headers"]


@pytest.mark.parametrize("extra", [b'"max_tokens": 500000', b'"max_tokens": 8, "n": 1000000'])
async def test_requests_that_never_fit_the_token_limit_are_400(hostile_gateway, extra):
    body = b'{"model": "sim-python", "messages": [{"role": "user", "content": "x"}], ' + extra \
        + b"}"
    response = await send(hostile_gateway, "POST", b"/v1/chat/completions", JSON, body)
    assert response.status == 400
    assert response.error_code() == "exceeds_limit"
    assert response.header("retry-after") is None


async def test_a_client_leaving_mid_body_is_one_log_line_without_a_traceback(hostile_gateway):
    marker = b"left-mid-body-7f3a"
    request = build("POST", b"/infer/python", [*JSON, (b"x-request-id", marker)],
                    b'{"prompt": "' + b"x" * 4000 + b'"}')
    await Connection(hostile_gateway.port).send_partial(request[:-2000])
    for _ in range(200):  # wait for the line, not for a fixed time
        log = hostile_gateway.log.read_text(errors="replace")
        if marker.decode() in log:
            break
        await asyncio.sleep(0.05)
    assert f"client disconnected before the request was complete, request_id={marker.decode()}" \
        in log
    assert "Traceback" not in log


async def test_a_full_pool_is_503_overloaded_and_healthz_still_sees_the_backends(backends,
                                                                                  log_dir):
    gateway = start_gateway(log_dir, "pool-gateway", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
        "UPSTREAM_MAX_CONNECTIONS": "2", "UPSTREAM_CONNECT_TIMEOUT_S": "0.5",
        "HEALTH_CACHE_S": "0"})
    stream = {"model": "sim-python", "stream": True, "max_tokens": 400,
              "messages": [{"role": "user", "content": "take your time"}]}
    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            held = [await client.send(client.build_request("POST", "/v1/chat/completions",
                                                           json=stream), stream=True)
                    for _ in range(2)]  # headers read, body not: both slots taken
            assert [r.status_code for r in held] == [200, 200]
            refused = await client.post("/infer/python", json={"prompt": "x"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "overloaded"
            assert refused.headers["retry-after"] == "1"
            report = (await client.get("/healthz")).json()
            assert report["backends"]["python"]["ok"] and report["backends"]["node"]["ok"]
            for response in held:
                await response.aclose()
            for _ in range(100):  # the slots come back once the gateway has seen the close
                answer = await client.post("/infer/python", json={"prompt": "x"})
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert answer.status_code == 200
    finally:
        gateway.stop()


async def floods(gateway) -> int:
    return json.loads((await send(gateway, "GET", b"/echo/status")).body)["floods"]


async def test_a_stream_nobody_reads_lets_go_of_the_backend_at_the_deadline(hostile_gateway):
    """...and ends the answer with one log line, no traceback: the deadline's UpstreamTimeout
    once escaped into the worker's server, whose traceback then failed test_fuzz's log check."""
    marker = "slow-reader-c41d"
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile_gateway.port)
    writer.write(build("GET", b"/slow/flood", [(b"x-request-id", marker.encode())]))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")  # the answer started; its body is never read
    assert head.startswith(b"HTTP/1.1 200")
    line = f"answer cut after its headers went out: upstream_timeout, request_id={marker}"
    try:
        for _ in range(400):  # the route's deadline is 1.5 s; wait for the backend to see it
            if await floods(hostile_gateway) == 0:
                break
            await asyncio.sleep(0.05)
        assert await floods(hostile_gateway) == 0
    finally:
        writer.close()  # the gateway's pending write returns, and it reads the body again
    for _ in range(400):
        log = hostile_gateway.log.read_text(errors="replace")
        if line in log or "Traceback" in log:
            break
        await asyncio.sleep(0.05)
    assert "Traceback" not in log
    assert log.count(line) == 1


azurite = azurite_fixture("function")  # each case starts with an empty limit


@pytest.mark.parametrize("level, logged", [("", False), ("INFO", True)])
def test_storage_sdk_logs_each_call_only_when_asked(backends, log_dir, azurite, level, logged):
    gateway = start_gateway(log_dir, f"sdk-log-{level or 'default'}", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
        "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
        "CLIENT_RPS": "0.5", "CLIENT_BURST": "3", "STORAGE_SDK_LOG_LEVEL": level})
    try:
        statuses = [httpx.post(f"{gateway.url}/infer/python", json={"prompt": "x"},
                               timeout=10).status_code for _ in range(4)]
    finally:
        gateway.stop()
    assert 200 in statuses and 429 in statuses  # the limiter used storage
    log = gateway.log.read_text(errors="replace")
    assert ("Request URL:" in log) is logged
