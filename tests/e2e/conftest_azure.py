"""The local Azure OpenAI resource with its managed-identity endpoint (services/azure_openai), for
the Azure OpenAI tests; helpers in tests/support/azure_sim.py.

Loaded with `pytest_plugins = ["tests.e2e.conftest_azure"]`.
"""

from __future__ import annotations

import secrets

import pytest

from scripts.procs import spawn_uvicorn
from tests.support.azure_sim import PAYG, PTU, TOKEN_LIFETIME_S


@pytest.fixture(scope="session")
def azure_sim(log_dir):
    header = secrets.token_hex(8)
    proc = spawn_uvicorn("azure-openai-sim", log_dir, "azure_openai", {
        "TTFT_MS": "20", "TOKEN_MS": "10", "LATENCY_MIN_MS": "0", "LATENCY_MAX_MS": "0",
        "SIM_DEPLOYMENTS": f"{PTU},{PAYG}", "SIM_IDENTITY_HEADER": header,
        "SIM_TOKEN_LIFETIME_S": str(TOKEN_LIFETIME_S)}, app="aoai_sim:app")
    proc.identity_header = header
    yield proc
    proc.stop()

