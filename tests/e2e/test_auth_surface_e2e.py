"""Issue 22, items 3, 4 and 9 through the local host, the real worker and Azurite: one gateway
key judged per request, operator endpoints behind the operator scope, no userinfo anywhere, and
the admin CLI's argument errors, against the recording echo backend."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.support.admin_cli import create_key
from tests.support.admin_cli import run_admin as admin

from .conftest import start_gateway

pytestmark = pytest.mark.e2e
PASSWORD = "pa55w0rd-e2e"
OPERATOR_PATHS = ("/_gateway/stats", "/metrics", "/cachez", "/_gateway/health")


def gateway_env(echo_backend, storage_env, mode: str) -> dict[str, str]:
    secret_url = echo_backend.url.replace("http://", f"http://svc-user:{PASSWORD}@")
    routes = [{"path": "/echo/*", "methods": ["GET", "POST"], "backend": "echo",
               "upstream_path": "/internal/echo"}]
    return {"GATEWAY_AUTH": mode, **storage_env,
            "GATEWAY_BACKENDS": json.dumps({"echo": echo_backend.url}),
            "GATEWAY_ROUTES": json.dumps(routes),
            "MODEL_ROUTES": json.dumps({"echo-model": secret_url}),
            "MODEL_API_KEYS": json.dumps({"echo-model": "sk-echo-own"}),
            "UPSTREAM_TIMEOUT_S": "10", "CACHE_ENABLED": "false"}


@pytest.fixture(scope="module")
def gateways(echo_backend, storage_env, log_dir):
    procs = {mode: start_gateway(log_dir, f"surface-{mode}",
                                 gateway_env(echo_backend, storage_env, mode))
             for mode in ("required", "optional")}
    yield procs
    for proc in procs.values():
        proc.stop()


def recorded(echo_backend, target: str) -> list[dict]:
    lines = echo_backend.record.read_text().splitlines()
    return [seen for seen in map(json.loads, lines) if seen["target"].startswith(target)]


def assert_json_401(response: httpx.Response, *secrets: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and error["request_id"]
    assert all(secret not in response.text for secret in secrets)


def test_a_second_gateway_key_never_reaches_the_backend(gateways, storage_env, echo_backend):
    url = gateways["required"].url
    key, other = create_key(storage_env, "one"), create_key(storage_env, "two")
    bearer = {"authorization": f"Bearer {key}"}
    cases = [({**bearer, "api-key": other}, ""), ({**bearer, "x-api-key": other}, ""),
             (bearer, f"?api-key={other}"), ({"api-key": key, "cookie": f"s={other}"}, "")]
    for i, (headers, query) in enumerate(cases):
        target = f"/echo/smuggle-{i}-{uuid.uuid4().hex[:6]}"
        assert_json_401(httpx.get(f"{url}{target}{query}", headers=headers, timeout=10),
                        key, other)
        assert recorded(echo_backend, "/internal/echo" + target[5:]) == []
    target = f"/echo/alone-{uuid.uuid4().hex[:6]}"
    assert httpx.get(f"{url}{target}", headers=bearer, timeout=10).status_code == 200
    [seen] = recorded(echo_backend, "/internal/echo" + target[5:])
    assert key not in json.dumps(seen)


def test_optional_foreign_bearer_beside_a_revoked_key_is_refused(gateways, storage_env,
                                                                  echo_backend):
    revoked = create_key(storage_env, "gone")
    assert admin(storage_env, "keys", "revoke", revoked[:11]).returncode == 0
    target = f"/echo/revoked-{uuid.uuid4().hex[:6]}"
    response = httpx.get(f"{gateways['optional'].url}{target}", timeout=10,
                         headers={"authorization": "Bearer sk-foreign", "api-key": revoked})
    assert_json_401(response, revoked)
    assert "revoked" in response.json()["error"]["message"]
    assert recorded(echo_backend, "/internal/echo" + target[5:]) == []


def test_a_backend_with_its_own_key_sees_no_client_credential(gateways, echo_backend):
    marker = uuid.uuid4().hex
    response = httpx.post(
        f"{gateways['optional'].url}/v1/chat/completions?api-version=1&api-key=sk-client-q",
        json={"model": "echo-model", "messages": [{"role": "user", "content": marker}]},
        headers={"authorization": "Bearer sk-client-a", "api-key": "sk-client-b",
                 "x-api-key": "sk-client-c", "cookie": "session=sk-client-d"}, timeout=10)
    assert response.status_code == 200, response.text
    assert PASSWORD not in json.dumps(dict(response.headers))
    seen = recorded(echo_backend, "/v1/chat/completions")[-1]
    assert seen["headers"]["authorization"] == "Bearer sk-echo-own"
    assert "sk-client" not in json.dumps(seen) and "api-version=1" in seen["target"]


def test_operator_endpoints_need_the_operator_scope(gateways, storage_env):
    url = gateways["required"].url
    tenant = create_key(storage_env, "tenant-a")
    operator = create_key(storage_env, "ops", "--operator")
    httpx.post(f"{url}/v1/chat/completions", timeout=10,
               headers={"authorization": f"Bearer {tenant}"},
               json={"model": "echo-model", "messages": [{"role": "user", "content": "x"}]})
    for path in OPERATOR_PATHS:
        assert_json_401(httpx.get(f"{url}{path}", timeout=10))
        denied = httpx.get(f"{url}{path}", headers={"api-key": tenant}, timeout=10)
        assert denied.status_code == 403 and denied.json()["error"]["request_id"]
        assert "tenant-a" not in denied.text
        allowed = httpx.get(f"{url}{path}", headers={"api-key": operator}, timeout=10)
        assert allowed.status_code == 200, (path, allowed.text)
        assert PASSWORD not in allowed.text and "svc-user" not in allowed.text
    stats = httpx.get(f"{url}/_gateway/stats", headers={"api-key": operator}, timeout=10)
    assert stats.json()["tokens"]["totals"]["reserved_tokens"] > 0  # the operator sees usage


def test_anonymous_healthz_shows_names_and_states_and_no_url(gateways):
    for proc in gateways.values():
        report = httpx.get(f"{proc.url}/healthz", timeout=10)
        assert report.status_code == 200
        assert "://" not in report.text and PASSWORD not in report.text
        assert "pools" not in report.text and "127.0.0.1" not in report.text
        assert report.json()["backends"]["echo"]["ok"] is True


def test_no_password_in_any_gateway_log(gateways):
    for proc in gateways.values():
        assert PASSWORD not in proc.log.read_text()


def test_admin_cli_bad_arguments_exit_2_without_a_traceback(storage_env):
    for argv in (("keys", "create", "--tenant", "t", "--name", "n", "--expires-days", "1e300"),
                 ("keys", "create", "--tenant", "t", "--name", "n", "--expires-days", "nan"),
                 ("keys", "create", "--tenant", "t", "--name", "x" * 40_000),
                 ("keys", "create", "--tenant", "t", "--name", "n", "--rps", "-1"),
                 ("tenants", "usage", "t", "--days", "10000000")):
        done = admin(storage_env, *argv)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "error:" in done.stderr
        assert "storage unavailable" not in done.stderr


async def test_admin_cli_escapes_a_stored_name_with_control_characters(storage_env):
    from function_app.adapters.keystore_table import open_key_store
    from function_app.tenants.records import KeyRecord

    store = open_key_store(storage_env["RATE_LIMIT_STORAGE_CONNECTION"],
                           table=storage_env["GATEWAY_KEYS_TABLE"])
    try:  # as an older version or a hand edit could have written it
        await store.create_key(KeyRecord("e" * 64, "evi2evi2", "evil", "x\x1b[2J\r\u202ey",
                                         1_795_000_000.0, expires=float("nan")))
    finally:
        await store.close()
    for argv in (("keys", "list", "--tenant", "evil"), ("keys", "show", "evi2evi2")):
        done = admin(storage_env, *argv)
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\r" not in done.stdout
        assert "\u202e" not in done.stdout and "x\\x1b[2J\\x0d\\u202ey" in done.stdout
        assert "expired" in done.stdout  # a NaN expiry counts as expired
