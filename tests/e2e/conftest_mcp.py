"""The MCP simulator (services/mcp, the official SDK's server) and gateways in front of it, with
gateway keys made by the admin CLI on one Azurite."""

from __future__ import annotations

import base64
import json

import pytest

from scripts.procs import PYTHON, ROOT, free_port, spawn

from .conftest import start_gateway

SESSION_KEY = base64.b64encode(bytes(range(32))).decode()
# shout: two calls, then one every 1000 s per caller (the per-tool limit, through the limiter).
TOOL_LIMITS = {"shout": {"rps": 0.001, "burst": 2}}


@pytest.fixture(scope="module")
def mcp_server(log_dir):
    port = free_port()
    proc = spawn("mcp-server", [PYTHON, "server.py"], port=port, log_dir=log_dir,
                 cwd=ROOT / "services/mcp", env={"PORT": str(port)}, ready_path=None,
                 timeout=90)
    yield proc
    proc.stop()


def mcp_env(server_url: str, storage: dict[str, str], **extra: str) -> dict[str, str]:
    servers = {"tools": {"url": f"{server_url}/mcp", "tool_limits": TOOL_LIMITS}}
    return {"GATEWAY_AUTH": "required", "MCP_SERVERS": json.dumps(servers),
            "MCP_SESSION_KEY": SESSION_KEY, "UPSTREAM_TIMEOUT_S": "10", **storage, **extra}


@pytest.fixture(scope="module")
def mcp_gateways(mcp_server, storage_env, log_dir):
    """Two gateway instances (local host + real worker) on one Azurite."""
    env = mcp_env(mcp_server.url, storage_env, MCP_MAX_EVENT_BYTES="65536")
    procs = [start_gateway(log_dir, f"mcp-gateway-{i}", env) for i in range(2)]
    yield procs
    for proc in procs:
        proc.stop()

