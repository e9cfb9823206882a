"""The local Azure OpenAI (services/azure_openai) as the tests drive it: gateway settings that
reach it with Entra tokens through azure-identity's managed-identity path, and its records."""

from __future__ import annotations

import json

import httpx

MODEL, PTU, PAYG = "gpt-4o", "gpt4o-ptu", "gpt4o-paygo"
API_VERSION = "2024-10-21"
TOKEN_LIFETIME_S = 4  # short: the tests run across several expiries


def backend(sim, deployment: str) -> dict:
    return {"url": sim.url, "api": "azure", "auth": "entra", "api_version": API_VERSION,
            "deployment": deployment}


def azure_env(sim, **extra: str) -> dict[str, str]:
    """A gateway whose model gpt-4o is a PTU deployment (priority 0) spilling over to a
    pay-as-you-go one (priority 1), both with the gateway's managed identity."""
    pool = [{"backend": "ptu", "priority": 0}, {"backend": "payg", "priority": 1}]
    return {"GATEWAY_BACKENDS": json.dumps({"ptu": backend(sim, PTU),
                                            "payg": backend(sim, PAYG)}),
            "MODEL_ROUTES": json.dumps({MODEL: {"backends": pool}}),
            "IDENTITY_ENDPOINT": f"{sim.url}/msi/token",
            "IDENTITY_HEADER": sim.identity_header,
            "RATE_LIMIT_STORAGE_CONNECTION": "", "UPSTREAM_TIMEOUT_S": "20", **extra}


def seen(sim) -> list[dict]:
    """Every request the local Azure OpenAI received, in order."""
    return httpx.get(f"{sim.url}/_sim/requests", timeout=5).json()


def throttle(sim, deployment: str, seconds: float) -> float:
    """Make `deployment` answer 429 for `seconds`; returns when it ends (wall clock)."""
    answer = httpx.post(f"{sim.url}/_sim/throttle", timeout=5,
                        json={"deployment": deployment, "seconds": seconds})
    return answer.json()["until"]
