"""Start-up validation of the environment: a bad value stops the simulator, naming the variable."""

from __future__ import annotations

import os
import subprocess

import pytest

from scripts.procs import free_port

from .conftest import sim_command


@pytest.mark.parametrize(("name", "value"), [
    ("PORT", "http"),
    ("MODEL_NAME", " "),
    ("LATENCY_MIN_MS", "-1"),
    ("LATENCY_MAX_MS", "1"),  # below the default LATENCY_MIN_MS of 30
    ("ERROR_RATE", "1.5"),
    ("ERROR_RATE", ""),
    ("TTFT_MS", "fast"),
    ("TOKEN_MS", "2.5"),
])
def test_bad_env_value_exits_naming_it(kind: str, name: str, value: str) -> None:
    port = free_port()
    cmd, cwd = sim_command(kind, port)
    env = {**os.environ, "PORT": str(port), name: value}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode != 0
    assert name in done.stdout + done.stderr
