"""Real processes: both backend simulators and the gateway served by the local Functions host
(funchost/) through the real Python worker."""

from __future__ import annotations

import json

import pytest

from scripts.procs import PYTHON, ROOT, free_port, spawn, spawn_host


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="session")
def backends(log_dir):
    py_port, node_port = free_port(), free_port()
    fast = {"LATENCY_MIN_MS": "5", "LATENCY_MAX_MS": "10", "TTFT_MS": "300", "TOKEN_MS": "30"}
    python = spawn("python-backend", [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                                      "--port", str(py_port), "--no-access-log"],
                   port=py_port, log_dir=log_dir, cwd=ROOT / "services/python",
                   env={**fast, "PORT": str(py_port)})
    node = spawn("node-backend", ["node", "server.js"], port=node_port, log_dir=log_dir,
                 cwd=ROOT / "services/node", env={**fast, "PORT": str(node_port)})
    yield {"python": python, "node": node}
    python.stop()
    node.stop()


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
    port = free_port()
    record = log_dir / "echo-record.jsonl"
    proc = spawn("echo-backend", [PYTHON, "-m", "tests.support.echo_backend", "--port",
                                  str(port), "--record", str(record)], port=port, log_dir=log_dir)
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
