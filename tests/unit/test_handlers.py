"""The registered handlers, called directly, with a fake upstream behind the real adapter."""

import json

import httpx
import pytest

from function_app.app import healthz, proxy
from tests.support.handler_calls import make_request, read_body, read_json

POST_JSON = {"content-type": "application/json"}


async def test_infer_is_proxied_to_the_backend_infer_path(install, backend):
    await install()
    response = await proxy(make_request("POST", "/infer/python", b'{"prompt": "hi"}', POST_JSON))
    assert response.status_code == 200
    assert await read_json(response) == {"echo": "/infer"}
    assert str(backend.seen[0].url) == "http://127.0.0.1:8001/infer"
    assert backend.seen[0].content == b'{"prompt": "hi"}'


async def test_node_route_reaches_the_node_backend(install, backend):
    await install(NODE_SERVICE_URL="http://127.0.0.1:9555")
    await proxy(make_request("POST", "/infer/node", b'{"prompt": "x"}', POST_JSON))
    assert backend.seen[0].url.port == 9555


async def test_malformed_json_is_400_and_never_reaches_the_backend(install, backend):
    await install()
    response = await proxy(make_request("POST", "/infer/python", b"{nope", POST_JSON))
    body = await read_json(response)
    assert response.status_code == 400
    assert body["error"]["code"] == "invalid_json"
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert backend.seen == []


async def test_json_that_is_not_an_object_is_400(install, backend):
    await install()
    response = await proxy(make_request("POST", "/infer/python", b"[1]", POST_JSON))
    assert response.status_code == 400 and backend.seen == []


async def test_unknown_path_is_a_json_404(install):
    await install()
    response = await proxy(make_request("GET", "/nowhere"))
    assert response.status_code == 404
    assert (await read_json(response))["error"]["code"] == "not_found"


async def test_wrong_method_is_a_json_405_with_allow(install):
    await install()
    response = await proxy(make_request("GET", "/infer/python"))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert (await read_json(response))["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("declare_length", [True, False])
async def test_body_over_the_cap_is_413(install, backend, declare_length):
    await install(MAX_BODY_BYTES="2048")
    body = json.dumps({"prompt": "x" * 5000}).encode()
    headers = {**POST_JSON, **({"content-length": str(len(body))} if declare_length else {})}
    response = await proxy(make_request("POST", "/infer/python", body, headers))
    assert response.status_code == 413
    assert (await read_json(response))["error"]["code"] == "payload_too_large"
    assert backend.seen == []


async def test_request_id_is_propagated_both_ways(install, backend):
    await install()
    headers = {**POST_JSON, "x-request-id": "trace-42"}
    response = await proxy(make_request("POST", "/infer/python", b'{"prompt": "a"}', headers))
    assert response.headers["x-request-id"] == "trace-42"
    assert backend.seen[0].headers["x-request-id"] == "trace-42"


async def test_function_key_is_never_forwarded(install, backend):
    await install()
    headers = {**POST_JSON, "x-functions-key": "s3cret"}
    await proxy(make_request("POST", "/infer/python", b'{"prompt": "a"}', headers,
                             query="code=s3cret&keep=1"))
    seen = backend.seen[0]
    assert "x-functions-key" not in seen.headers
    assert seen.url.query == b"keep=1"
    assert "s3cret" not in str(seen.url) + str(seen.headers)


async def test_forwarded_headers_describe_the_client(install, backend):
    await install()
    headers = {**POST_JSON, "host": "gw.example.net"}
    await proxy(make_request("POST", "/infer/python", b'{"prompt": "a"}', headers,
                             client="203.0.113.50"))
    seen = backend.seen[0].headers
    assert seen["x-forwarded-for"] == "203.0.113.50"
    assert seen["x-forwarded-host"] == "gw.example.net"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["host"] == "127.0.0.1:8001"


async def test_backend_status_and_headers_pass_through(install, backend):
    backend.respond = lambda r: httpx.Response(
        418, headers={"x-model": "teapot", "connection": "close", "retry-after": "3"},
        content=b"short and stout")
    await install()
    response = await proxy(make_request("POST", "/infer/python", b'{"prompt": "a"}', POST_JSON))
    assert response.status_code == 418
    assert response.headers["x-model"] == "teapot"
    assert response.headers["retry-after"] == "3"
    assert "connection" not in response.headers
    assert await read_body(response) == b"short and stout"


async def test_streamed_chunks_are_forwarded_one_by_one(install, backend):
    produced = []

    async def stream():
        for i in range(3):
            produced.append(i)
            yield f"data: {i}\n\n".encode()

    backend.respond = lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"},
                                               content=stream())
    await install()
    response = await proxy(make_request("POST", "/infer/python", b'{"prompt": "a"}', POST_JSON))
    received = []
    async for chunk in response.body_iterator:
        # Each chunk arrives before the backend has produced the next one.
        received.append((chunk, len(produced)))
    assert received == [(b"data: 0\n\n", 1), (b"data: 1\n\n", 2), (b"data: 2\n\n", 3)]


FAILURES = {
    "refused": (httpx.ConnectError("connection refused to 10.0.0.7:8001"), 502,
                "upstream_unavailable", [b"10.0.0.7"]),
    "timeout": (httpx.ReadTimeout("timed out"), 504, "upstream_timeout", []),
    # Anything unexpected: a bare 500 without detail.
    "unexpected": (RuntimeError("secret internal state at /srv/app.py line 3"), 500,
                   "internal_error", [b"secret", b"Traceback"]),
}


@pytest.mark.parametrize("failure", FAILURES)
async def test_a_failing_backend_is_a_json_error_that_names_nothing_inside(install, backend,
                                                                          failure):
    error, status, code, hidden = FAILURES[failure]

    def fail(request):
        raise error

    backend.respond = fail
    await install()
    response = await proxy(make_request("POST", "/infer/python", b'{"prompt": "a"}', POST_JSON))
    body = await read_body(response)
    assert response.status_code == status
    assert json.loads(body)["error"]["code"] == code
    assert not [text for text in hidden if text in body]


async def test_healthz_reports_each_backend(install, backend):
    backend.respond = lambda r: (httpx.Response(200, json={"ok": True})
                                 if r.url.port == 8001 else httpx.Response(503))
    await install()
    response = await healthz(make_request("GET", "/healthz"))
    report = await read_json(response)
    assert response.status_code == 200
    assert report["ok"] is True and report["service"] == "ai-gateway"
    assert report["backends"]["python"]["ok"] is True
    assert report["backends"]["node"]["ok"] is False
    assert set(report) >= {"uptime_ms", "version"}


async def test_invalid_settings_give_a_json_503_naming_nothing(monkeypatch, caplog):
    from function_app import app as app_module
    from function_app.wiring.lazy import LazyGateway

    monkeypatch.setattr(app_module, "gateway", LazyGateway(lambda: {"PORT": "nope"}))
    for call in (proxy(make_request("POST", "/infer/python", b"{}", POST_JSON)),
                 healthz(make_request("GET", "/healthz"))):
        response = await call
        body = await read_json(response)
        assert response.status_code == 503
        assert body["error"]["code"] == "misconfigured"
        assert "PORT" not in json.dumps(body) and "nope" not in json.dumps(body)
    assert "setting PORT is invalid" in caplog.text  # the operator's log names it
