"""Real processes: both backend simulators, the gateway served by the local Functions host
(funchost/) through the real Python worker, and Azurite.

`azurite` is one Azurite per test module (in memory, so every module starts empty); a module
whose tests stop and start it takes its own per test with `azurite = azurite_fixture("function")`.
`storage_env` puts a gateway's limits and keys, and the admin CLI, on it. `support_server` makes
a fixture of a server in tests/support (`python -m tests.support.<module> --port N`)."""

from __future__ import annotations

import json

import pytest

from scripts.procs import (
    PYTHON,
    Proc,
    free_port,
    spawn,
    spawn_host,
    spawn_node,
    spawn_uvicorn,
)
from tests.support.azurite import azurite_fixture

azurite = azurite_fixture("module")


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="session")
def backends(log_dir):
    fast = {"LATENCY_MIN_MS": "5", "LATENCY_MAX_MS": "10", "TTFT_MS": "300", "TOKEN_MS": "30"}
    python = spawn_uvicorn("python-backend", log_dir, "python", fast)
    node = spawn_node("node-backend", log_dir, fast)
    yield {"python": python, "node": node}
    python.stop()
    node.stop()


@pytest.fixture(scope="module")
def storage_env(azurite) -> dict[str, str]:
    """Limits and gateway keys on this module's Azurite (a keys table of its own name, so the
    setting is exercised); the admin CLI takes the same settings (tests/support/admin_cli.py)."""
    return {"RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
            "GATEWAY_KEYS_TABLE": "e2ekeys"}


def spawn_support(log_dir, name: str, module: str, *args: str) -> Proc:
    """`python -m tests.support.<module> --port N *args` on a free port, once it answers."""
    port = free_port()
    return spawn(name, [PYTHON, "-m", f"tests.support.{module}", "--port", str(port), *args],
                 port=port, log_dir=log_dir)


def support_server(module: str, name: str, scope: str = "module"):
    """A fixture (assign it to a name) running `spawn_support(log_dir, name, module)`."""

    @pytest.fixture(scope=scope)
    def server(log_dir):
        proc = spawn_support(log_dir, name, module)
        yield proc
        proc.stop()

    return server


def start_gateway(log_dir, name: str, env: dict[str, str]):
    """The app through the local Functions host and the real worker (funchost/)."""
    return spawn_host(name, port=free_port(), log_dir=log_dir, env=env)


@pytest.fixture(scope="session")
def gateway(backends, log_dir):
    # A streaming route added purely by configuration, to show routes are data.
    routes = [{"path": "/infer/python", "methods": ["POST"], "backend": "python",
               "upstream_path": "/infer", "json_body": True},
              {"path": "/infer/node", "methods": ["POST"], "backend": "node",
               "upstream_path": "/infer", "json_body": True},
              {"path": "/sim/*", "methods": ["GET", "POST"], "backend": "python",
               "upstream_path": "/"}]
    proc = start_gateway(log_dir, "gateway", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
        "GATEWAY_ROUTES": json.dumps(routes), "UPSTREAM_TIMEOUT_S": "10",
        "MAX_BODY_BYTES": "4096"})
    yield proc
    proc.stop()


# Hostile input (issue 14): a raw echo backend that records every request target it receives,
# and a gateway with a `/echo/*` prefix route to it beside the seed and OpenAI routes.
ECHO_UPSTREAM = "/internal/echo"
FUZZ_SECRETS = {"function_key": "fzkey-5ecret-7a1c", "model_key": "sk-fuzz-upstream-9e3b"}


@pytest.fixture(scope="session")
def echo_backend(log_dir):
    record = log_dir / "echo-record.jsonl"
    proc = spawn_support(log_dir, "echo-backend", "echo_backend", "--record", str(record))
    proc.record = record
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def hostile_gateway(backends, echo_backend, log_dir):
    routes = [{"path": "/echo/*", "methods": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                              "OPTIONS"], "backend": "echo",
               "upstream_path": ECHO_UPSTREAM},
              # A short deadline, for the client that never reads (the echo backend's /flood).
              {"path": "/slow/*", "methods": ["GET"], "backend": "echo",
               "upstream_path": ECHO_UPSTREAM + "/slow", "timeout_s": 1.5},
              {"path": "/infer/python", "methods": ["POST"], "backend": "python",
               "upstream_path": "/infer", "json_body": True},
              {"path": "/infer/node", "methods": ["POST"], "backend": "node",
               "upstream_path": "/infer", "json_body": True}]
    proc = start_gateway(log_dir, "hostile-gateway", {
        "PY_SERVICE_URL": backends["python"].url, "NODE_SERVICE_URL": backends["node"].url,
        "GATEWAY_BACKENDS": json.dumps({"echo": echo_backend.url}),
        "GATEWAY_ROUTES": json.dumps(routes), "UPSTREAM_TIMEOUT_S": "10",
        "MAX_BODY_BYTES": "262144", "DEFAULT_MAX_TOKENS": "8",
        "MODEL_API_KEYS": json.dumps({"sim-node": FUZZ_SECRETS["model_key"]}),
        # An MCP server at the echo backend: what the MCP routes forward is recorded too.
        "MCP_SERVERS": json.dumps({"tools": f"{echo_backend.url}{ECHO_UPSTREAM}/mcp"})})
    yield proc
    proc.stop()
