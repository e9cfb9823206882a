"""Processes for the OpenAI tests: a fast-streaming simulator and gateways routing to it.

Test modules load it with `pytest_plugins = ["tests.e2e.conftest_openai"]` (pytest loads only
conftest.py by itself) rather than importing it, so pytest can rewrite its asserts; they repeat
MODEL and TOKEN_MS.
"""

from __future__ import annotations

import json

import pytest

from scripts.procs import spawn_uvicorn

from .conftest import start_gateway

# 16 answer tokens: the first after TTFT_MS, one every TOKEN_MS after it (about 0.5 s in all).
TTFT_MS, TOKEN_MS = 50, 30
MODEL = "sim-small"


@pytest.fixture(scope="session")
def openai_sim(log_dir):
    proc = spawn_uvicorn("openai-sim", log_dir, "python", {
        "TTFT_MS": str(TTFT_MS), "TOKEN_MS": str(TOKEN_MS), "LATENCY_MIN_MS": "0",
        "LATENCY_MAX_MS": "0"})
    yield proc
    proc.stop()


def env_for(sim, **extra: str) -> dict[str, str]:
    """Gateway settings routing MODEL (and sim-python) to `sim`, memory-backed limits."""
    return {"MODEL_ROUTES": json.dumps({MODEL: sim.url, "sim-python": sim.url}),
            "PY_SERVICE_URL": sim.url, "RATE_LIMIT_STORAGE_CONNECTION": "",
            "UPSTREAM_TIMEOUT_S": "20", **extra}


@pytest.fixture(scope="session")
def openai_env(openai_sim):
    """`openai_env(**extra)`: env_for the session's simulator."""
    return lambda **extra: env_for(openai_sim, **extra)


@pytest.fixture(scope="session")
def openai_gateway(openai_env, log_dir):
    proc = start_gateway(log_dir, "openai-gateway", openai_env())
    yield proc
    proc.stop()
