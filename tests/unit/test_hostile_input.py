"""Issue 14's cases at handler level: each answered 4xx (never 500), nothing escapes its route."""

import json
import logging
from urllib.parse import unquote

import pytest
from starlette.requests import Request

from function_app.app import proxy
from tests.support.handler_calls import make_request, read_json

ECHO_ROUTES = json.dumps([
    {"path": "/echo/*", "methods": ["GET", "POST"], "backend": "echo",
     "upstream_path": "/internal/echo"},
    {"path": "/infer/python", "methods": ["POST"], "backend": "python",
     "upstream_path": "/infer", "json_body": True}])
ECHO = {"GATEWAY_BACKENDS": json.dumps({"echo": "http://127.0.0.1:9009"}),
        "GATEWAY_ROUTES": ECHO_ROUTES}
POST_JSON = {"content-type": "application/json"}


def raw_request(method: str, raw_path: str, *, query: str = "", body: bytes = b"",
                headers: list[tuple[bytes, bytes]] | None = None, client: str = "127.0.0.1",
                receive=None) -> Request:
    """A request whose raw path, decoded path and header bytes are exactly as given."""
    scope = {"type": "http", "http_version": "1.1", "method": method,
             "path": unquote(raw_path, encoding="latin-1"), "raw_path": raw_path.encode("latin-1"),
             "query_string": query.encode("latin-1"), "headers": headers or [],
             "client": (client, 50000), "server": ("127.0.0.1", 7071), "scheme": "http"}

    async def whole():
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive or whole)


@pytest.mark.parametrize("raw", [
    "/echo/a/../../admin", "/echo/%2e%2e/%2e%2e/admin", "/echo/..%2f..%2fadmin",
    "/echo/x%3Fcode=SMUGGLED", "/echo/a%2fb", "/echo/a%00b", "/echo/a%0db",
    "/echo/%252e%252e/admin", "/echo/a%5c..%5cadmin",
])
async def test_paths_that_would_leave_the_route_are_400_and_never_forwarded(install, backend,
                                                                              raw):
    await install(**ECHO)
    response = await proxy(raw_request("GET", raw))
    assert response.status_code == 400
    assert (await read_json(response))["error"]["code"] == "invalid_path"
    assert backend.seen == []


async def test_an_ordinary_encoded_path_reaches_the_backend_still_encoded(install, backend):
    await install(**ECHO)
    response = await proxy(raw_request("GET", "/echo/a%20b/v1.2"))
    assert response.status_code == 200
    assert backend.seen[0].url.raw_path == b"/internal/echo/a%20b/v1.2"


async def test_the_function_key_is_stripped_in_every_spelling(install, backend):
    await install(**ECHO)
    query = "CODE=K2&Code=K3&%63ode=K4&c%6Fde=K5&co%64e=K6&code=K1&keep=1&codex=2"
    response = await proxy(raw_request("GET", "/echo/x", query=query))
    assert response.status_code == 200
    assert backend.seen[0].url.query == b"keep=1&codex=2"


# TRUSTED_PROXIES defaults to nothing: the loopback peer included.
UNTRUSTED = ({}, [(b"host", b"gw.example.net"), (b"x-forwarded-for", b"4.4.4.4"),
                  (b"x-forwarded-host", b"evil.example"), (b"x-forwarded-proto", b"https")],
             ("127.0.0.1", "gw.example.net", "http"))
TRUSTED = ({"TRUSTED_PROXIES": "127.0.0.1/32"},
           [(b"host", b"gw"), (b"x-forwarded-for", b"4.4.4.4"),
            (b"x-forwarded-host", b"front.example"), (b"x-forwarded-proto", b"https")],
           ("4.4.4.4, 127.0.0.1", "front.example", "https"))


@pytest.mark.parametrize("settings, headers, forwarded", [UNTRUSTED, TRUSTED],
                         ids=["untrusted-peer-replaced", "trusted-proxy-kept"])
async def test_forwarded_headers_are_kept_only_from_a_trusted_proxy(install, backend, settings,
                                                                    headers, forwarded):
    await install(**ECHO, **settings)
    await proxy(raw_request("GET", "/echo/x", headers=headers))
    seen = backend.seen[0].headers
    assert (seen["x-forwarded-for"], seen["x-forwarded-host"],
            seen["x-forwarded-proto"]) == forwarded


async def test_rotating_x_forwarded_for_does_not_buy_a_new_bucket(install, backend):
    await install(**ECHO, CLIENT_RPS="0.01", CLIENT_BURST="2")
    statuses = []
    for i in range(6):
        headers = [(b"x-forwarded-for", f"10.0.0.{i}".encode())]
        statuses.append((await proxy(raw_request("GET", "/echo/x", headers=headers))).status_code)
    assert statuses == [200, 200, 429, 429, 429, 429]


@pytest.mark.parametrize("depth", [5_000, 100_000])
async def test_deeply_nested_json_is_a_400(install, backend, depth):
    await install(**ECHO)
    body = b'{"prompt": ' + b"[" * depth + b"]" * depth + b"}"
    response = await proxy(raw_request("POST", "/infer/python", body=body,
                                       headers=[(b"content-type", b"application/json")]))
    assert response.status_code == 400
    assert (await read_json(response))["error"]["code"] == "json_too_deep"
    assert backend.seen == []


CHAT_HEAD = b'{"model": "sim-python", "messages": [{"role": "user", "content": "hi"}], '


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", CHAT_HEAD + b'"tools": ' + b"[" * 980 + b"{}" + b"]" * 980 + b"}"),
    ("/v1/completions",
     b'{"model": "sim-python", "prompt": ' + b"[" * 900 + b'"x"' + b"]" * 900 + b"}"),
])
async def test_deep_openai_bodies_are_400_not_500(install, backend, path, body):
    await install()
    response = await proxy(raw_request("POST", path, body=body,
                                       headers=[(b"content-type", b"application/json")]))
    assert response.status_code == 400
    assert (await read_json(response))["error"]["code"] == "json_too_deep"
    assert backend.seen == []


async def test_non_ascii_header_bytes_are_forwarded_not_a_500(install, backend):
    await install(**ECHO)
    response = await proxy(raw_request("GET", "/echo/x", headers=[(b"x-bad", b"\xff\xfe caf\xe9")]))
    assert response.status_code == 200
    assert dict(backend.seen[0].headers.raw)[b"x-bad"] == b"\xff\xfe caf\xe9"


async def test_a_client_gone_mid_body_is_logged_as_such_without_a_traceback(install, backend,
                                                                           caplog):
    await install()
    messages = [{"type": "http.request", "body": b'{"prompt": "hal', "more_body": True},
                {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    caplog.set_level(logging.INFO)
    response = await proxy(raw_request("POST", "/infer/python", receive=receive,
                                       headers=[(b"content-type", b"application/json")]))
    assert response.status_code == 499
    assert backend.seen == []
    assert any("client disconnected" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("extra", [{"max_tokens": 500_000}, {"max_tokens": 16, "n": 10**6}])
async def test_a_request_no_bucket_can_ever_hold_is_400_not_429(install, backend, extra):
    await install()
    body = json.dumps({"model": "sim-python", "messages": [{"role": "user", "content": "hi"}],
                       **extra}).encode()
    response = await proxy(make_request("POST", "/v1/chat/completions", body, POST_JSON))
    error = (await read_json(response))["error"]
    assert response.status_code == 400, error
    assert error["code"] == "exceeds_limit"
    assert "retry-after" not in response.headers
    assert backend.seen == []


async def test_storage_sdk_logs_at_warning_unless_asked(install):
    logging.getLogger("azure").setLevel(logging.NOTSET)
    await install()
    assert logging.getLogger("azure").level == logging.WARNING
    await install(STORAGE_SDK_LOG_LEVEL="INFO")
    assert logging.getLogger("azure").level == logging.INFO
