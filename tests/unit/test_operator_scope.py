"""Issue 22, item 4: what anonymous callers and tenant keys may read. Anonymous /healthz names
backends and states only; a URL's userinfo appears nowhere; with GATEWAY_AUTH on, the operator
endpoints need a gateway key with the operator scope."""

from __future__ import annotations

import json

import pytest

from function_app.app import cachez, health_detail, healthz, metrics, proxy, stats
from function_app.settings.load import SettingsError, load_settings
from tests.support.handler_calls import make_request, read_body
from tests.unit.test_tenant_auth import answer, chat, new_key

SECRET_URL = "http://svc-user:pa55w0rd@gpu.internal:8000/v1"
ROUTES = json.dumps({"gpu": SECRET_URL, "sim-python": "python"})
ENDPOINTS = {"/_gateway/stats": stats, "/metrics": metrics, "/cachez": cachez,
             "/_gateway/health": health_detail}


async def get(path: str, headers: dict | None = None):
    handler = ENDPOINTS.get(path, healthz)
    response = await handler(make_request("GET", path, headers=headers or {}))
    return response, (await read_body(response)).decode()


def bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
async def test_required_operator_endpoints_need_an_operator_key(gw, backend, path):
    store = await gw()
    tenant = await new_key(store, tenant="acme")
    operator = await new_key(store, tenant="ops", operator=True)
    revoked = await new_key(store, tenant="ops", operator=True, revoked=True)
    for headers, status in (({}, 401), (bearer(tenant), 403), (bearer(revoked), 401),
                            ({**bearer(operator), "x-api-key": tenant}, 401)):
        response, text = await get(path, headers)
        assert response.status_code == status, (headers, text)
        error = json.loads(text)["error"]
        assert error["code"] in ("invalid_api_key", "forbidden") and error["request_id"]
        assert tenant not in text and operator not in text
    response, _ = await get(path, {"api-key": operator})
    assert response.status_code == 200


async def test_optional_mode_does_not_open_operator_endpoints_to_a_missing_key(gw, backend):
    store = await gw(GATEWAY_AUTH="optional")
    operator = await new_key(store, tenant="ops", operator=True)
    assert (await get("/_gateway/stats"))[0].status_code == 401
    assert (await get("/_gateway/stats", bearer(operator)))[0].status_code == 200


async def test_a_tenant_key_never_reads_another_tenants_usage(gw, backend):
    store = await gw()
    backend.respond = answer
    mine, theirs = await new_key(store, tenant="mine"), await new_key(store, tenant="theirs")
    response = await proxy(make_request("POST", "/v1/chat/completions", chat(),
                                        {"content-type": "application/json", **bearer(theirs)}))
    assert response.status_code == 200
    for path in ENDPOINTS:
        response, text = await get(path, bearer(mine))
        assert response.status_code == 403 and "theirs" not in text


async def test_without_gateway_auth_the_function_key_alone_opens_them(install, backend):
    await install()
    for path in ENDPOINTS:
        assert (await get(path))[0].status_code == 200


async def test_userinfo_and_urls_never_shown(install, backend):
    await install(MODEL_ROUTES=ROUTES, MODEL_API_KEYS=json.dumps({"gpu": "sk-own"}))
    backend.respond = answer
    response = await proxy(make_request("POST", "/v1/chat/completions", chat("gpu"),
                                        {"content-type": "application/json"}))
    assert response.status_code == 200
    assert "pa55w0rd" not in json.dumps(dict(response.headers))
    assert backend.seen[0].url.host == "gpu.internal"  # the real URL is still what is sent
    _, anonymous = await get("/healthz")
    assert "://" not in anonymous and "pools" not in anonymous and "gpu.internal" not in anonymous
    assert '"python"' in anonymous and "url_backends" in anonymous
    for path in ENDPOINTS:
        response, text = await get(path)
        assert response.status_code == 200
        assert "pa55w0rd" not in text and "svc-user" not in text, path
    _, metrics_text = await get("/metrics")
    assert 'backend="http://gpu.internal:8000/v1"' in metrics_text
    attempts = [line for line in metrics_text.splitlines()
                if line.startswith("gateway_upstream_attempts_total{")]
    assert any("gpu.internal" in line for line in attempts), attempts


@pytest.mark.parametrize("environ", [
    {"GATEWAY_BACKENDS": json.dumps({"x": "ftp://svc-user:pa55w0rd@h/"})},
    {"MODEL_ROUTES": json.dumps({"m": "gopher://svc-user:pa55w0rd@h/"})},
    {"PY_SERVICE_URL": "svc-user:pa55w0rd@h:80"},
])
def test_a_settings_error_never_shows_a_password(environ):
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert "pa55w0rd" not in str(caught.value)


def test_a_storage_error_message_loses_userinfo_and_query():
    from function_app.core.store_errors import StoreRefused, StoreUnavailable

    for kind in (StoreUnavailable, StoreRefused):
        text = str(kind("GET https://acct:pw@acct.table.core.windows.net/t()?sig=SECRET failed"))
        assert "SECRET" not in text and "pw@" not in text and "acct.table" in text
