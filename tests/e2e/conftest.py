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
