"""Both simulators as real processes, started lazily once per session and shared by the tests.

Every test taking `kind` (or a fixture built on it) runs against the python and node simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.procs import PYTHON, ROOT, Proc, free_port, spawn

SERVICES = ROOT / "services"
# Short but measurable generation times: streams take a few hundred milliseconds.
BASE_ENV = {"TTFT_MS": "50", "TOKEN_MS": "20", "LATENCY_MIN_MS": "5", "LATENCY_MAX_MS": "15"}


def sim_command(kind: str, port: int) -> tuple[list[str], Path]:
    """The command line and working directory that start simulator `kind` on `port`."""
    if kind == "python":
        return [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log"], SERVICES / "python"
    if not (SERVICES / "node" / "node_modules" / "express").is_dir():
        raise RuntimeError("express is missing: run `npm ci` in services/node first")
    return ["node", "server.js"], SERVICES / "node"


class SimPool:
    """Simulator processes keyed by kind and environment, each started on first use."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: dict[tuple[str, frozenset[tuple[str, str]]], Proc] = {}

    def url(self, kind: str, **env: str) -> str:
        key = (kind, frozenset(env.items()))
        if key not in self._procs:
            port = free_port()
            cmd, cwd = sim_command(kind, port)
            name = f"{kind}-sim-{len(self._procs)}"
            self._procs[key] = spawn(name, cmd, port=port, log_dir=self._log_dir, cwd=cwd,
                                     env={**env, "PORT": str(port)})
        return self._procs[key].url

    def stop_all(self) -> None:
        for proc in self._procs.values():
            proc.stop()


@pytest.fixture(scope="session")
def sim_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimPool]:
    pool = SimPool(tmp_path_factory.mktemp("sim-logs"))
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session", params=["python", "node"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def api(sim_pool: SimPool, kind: str) -> Iterator[httpx.Client]:
    """A client for simulator `kind` with the short timings of BASE_ENV."""
    with httpx.Client(base_url=sim_pool.url(kind, **BASE_ENV), timeout=10) as client:
        yield client
