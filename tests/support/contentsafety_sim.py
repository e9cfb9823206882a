"""The local Content Safety simulator (services/contentsafety) as a process, for tests and
benchmarks: `spawn_content_safety(log_dir, rules)` with a known key, token and identity header."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from scripts.procs import Proc, spawn_uvicorn

SIM_KEY = "cs-test-key-0b3f"
SIM_TOKEN = "cs-test-token-7d21"
SIM_IDENTITY_HEADER = "cs-identity-header-5a90"
RULES = {"harm": {"poison": ["SelfHarm", 6], "bomb": ["Violence", 6]},
         "attacks": ["ignore previous instructions", "ignore all previous instructions"]}


def spawn_content_safety(log_dir: Path, rules: dict | None = None, name: str = "contentsafety",
                         **env: str) -> Proc:
    return spawn_uvicorn(name, log_dir, "contentsafety", {
        "CS_KEY": SIM_KEY, "CS_TOKEN": SIM_TOKEN, "CS_IDENTITY_HEADER": SIM_IDENTITY_HEADER,
        "CS_RULES": json.dumps(RULES if rules is None else rules), **env})


def sim_calls(proc: Proc) -> dict[str, int]:
    return httpx.get(f"{proc.url}/_control", timeout=5).json()["calls"]
