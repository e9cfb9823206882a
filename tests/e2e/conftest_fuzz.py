"""Processes and keys for the fuzzer's multi-tenant cases (tests/fuzz/tenants.py, bursts.py).

Loaded by test_fuzz.py with `pytest_plugins`. Two gateways on one Azurite, `GATEWAY_AUTH`
required (completions cached per tenant) and optional (completions shared), in front of the
recording echo backend and the hostile scripted backend (model `hostile`, route `/scripted/*`).
Keys are made through the admin code (`function_app.admin.cli.main`) against that Azurite: a
tenant's limits are generous enough that the fuzzer's own traffic never meets them, so any 429
outside a burst is a tenant locked out.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from function_app.tenants import keys as keyfmt
from tests.fuzz.admin import KEYS_TABLE, Admin
from tests.support.waiting import wait_until

from .conftest import ECHO_UPSTREAM, start_gateway, support_server

GENEROUS = "100000000"  # tokens per minute, per key and per model
FOREIGN = "sk-fuzz-foreign-5b2e"  # a backend's own credential, not a gateway key


@pytest.fixture(scope="module")
def fuzz_admin(azurite):
    return Admin(azurite.connection_string)


async def _make_keys(admin: Admin) -> dict[str, str]:
    for tenant in ("A", "B"):  # a budget that exists, so a lock-out would show
        await admin.run("tenants", "set", tenant, "--daily-tokens", "1000000000000")
    keys = {slot: await admin.key(tenant, "--tpm", GENEROUS)
            for slot, tenant in (("A1", "A"), ("A2", "A"), ("B1", "B"), ("R", "A"))}
    await admin.run("keys", "revoke", keys["R"])
    keys["X"] = await admin.key("A", "--expires-days", "0.00001")  # gone in under a second
    expired_at = time.time() + 0.00001 * 86400  # its expiry is before this
    broken = keys["A1"][-1]
    keys["M"] = keys["A1"][:-1] + ("b" if broken == "a" else "a")
    keys["F"] = keyfmt.generate()
    keys["S"] = FOREIGN

    async def x_expired() -> bool:  # by the wall clock, which the gateways judge expiry by
        return time.time() > expired_at

    await wait_until(x_expired, within_s=5)
    return keys


@pytest.fixture(scope="module")
def fuzz_keys(fuzz_admin):
    return asyncio.run(_make_keys(fuzz_admin))


scripted_backend = support_server("scripted_backend", "fuzz-scripted-backend")


def tenant_gateway_env(mode: str, echo_backend, scripted_backend, connection: str) -> dict:
    routes = [{"path": "/echo/*", "methods": ["GET", "POST"], "backend": "echo",
               "upstream_path": ECHO_UPSTREAM},
              {"path": "/scripted/*", "methods": ["GET"], "backend": "scripted",
               "upstream_path": "/s"}]
    return {"GATEWAY_AUTH": mode, "RATE_LIMIT_STORAGE_CONNECTION": connection,
            "GATEWAY_KEYS_TABLE": KEYS_TABLE, "RATE_LIMIT_SYNC": "lease",
            "PY_SERVICE_URL": scripted_backend.url, "NODE_SERVICE_URL": scripted_backend.url,
            "GATEWAY_BACKENDS": json.dumps({"echo": echo_backend.url,
                                            "scripted": scripted_backend.url}),
            "GATEWAY_ROUTES": json.dumps(routes),
            "MODEL_ROUTES": json.dumps({"hostile": scripted_backend.url,
                                        "steady": f"{scripted_backend.url}/steady"}),
            "CACHE_COMPLETIONS": "hostile",
            "CACHE_COMPLETIONS_SHARED": "true" if mode == "optional" else "false",
            "SSE_MAX_EVENT_BYTES": "65536", "UPSTREAM_TIMEOUT_S": "2",
            "CLIENT_TPM": GENEROUS, "MODEL_TPM": GENEROUS, "HEALTH_CACHE_S": "5"}


@pytest.fixture(scope="module")
def tenant_gateways(echo_backend, scripted_backend, azurite, fuzz_keys, log_dir):
    procs = {mode: start_gateway(log_dir, f"fuzz-{mode}-gateway", tenant_gateway_env(
        mode, echo_backend, scripted_backend, azurite.connection_string))
        for mode in ("required", "optional")}
    yield procs
    for proc in procs.values():
        proc.stop()
