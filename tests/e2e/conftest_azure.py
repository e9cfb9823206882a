"""The local Azure OpenAI resource with its managed-identity endpoint (services/azure_openai), for
the Azure OpenAI tests; helpers in tests/support/azure_sim.py.

Loaded with `pytest_plugins = ["tests.e2e.conftest_azure"]`.
"""

from __future__ import annotations

import secrets

import pytest

from scripts.procs import PYTHON, ROOT, free_port, spawn
from tests.support.azure_sim import PAYG, PTU, TOKEN_LIFETIME_S


@pytest.fixture(scope="session")
def azure_sim(log_dir):
    port, header = free_port(), secrets.token_hex(8)
    proc = spawn("azure-openai-sim", [PYTHON, "-m", "uvicorn", "aoai_sim:app", "--host",
                                      "127.0.0.1", "--port", str(port), "--no-access-log"],
                 port=port, log_dir=log_dir, cwd=ROOT / "services/azure_openai",
                 env={"PORT": str(port), "TTFT_MS": "20", "TOKEN_MS": "10",
                      "LATENCY_MIN_MS": "0", "LATENCY_MAX_MS": "0",
                      "SIM_DEPLOYMENTS": f"{PTU},{PAYG}", "SIM_IDENTITY_HEADER": header,
                      "SIM_TOKEN_LIFETIME_S": str(TOKEN_LIFETIME_S)})
    proc.identity_header = header
    yield proc
    proc.stop()

