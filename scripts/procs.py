"""Real processes for the local stack, tests and benchmarks: free ports, spawning a server in
its own process group and waiting until it answers, stopping the whole group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    name: str,
    cmd: Sequence[str],
    *,
    port: int,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_path: str | None = "/healthz",
    timeout: float = 30.0,
) -> Proc:
    """Start `cmd` in its own process group and wait until it listens on `port`.

    With `ready_path`, ready means an HTTP GET of that path answers (any status); without, that
    the TCP port accepts connections. Raises RuntimeError with the log's tail when it does not.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            list(cmd), cwd=cwd or ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    proc = Proc(name, popen, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited with {popen.returncode}:\n{proc.log_tail()}")
        if _answers(port, ready_path):
            return proc
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"{name} did not become ready on port {port}:\n{proc.log_tail()}")


# The Node simulator answering at once: benchmarks that measure the gateway, not inference.
INSTANT = {"LATENCY_MIN_MS": "0", "LATENCY_MAX_MS": "0", "TTFT_MS": "0", "TOKEN_MS": "0"}


def spawn_node(name: str, log_dir: Path, env: Mapping[str, str] | None = None) -> Proc:
    """The Node inference simulator (services/node) on a free port, with `env` on top."""
    port = free_port()
    return spawn(name, ["node", "server.js"], port=port, log_dir=log_dir,
                 cwd=ROOT / "services/node", env={"PORT": str(port), **(env or {})})


def spawn_uvicorn(name: str, log_dir: Path, service: str, env: Mapping[str, str] | None = None,
                  *, app: str = "app:app", port: int | None = None) -> Proc:
    """The ASGI simulator `app` under services/<service> served by uvicorn on 127.0.0.1, on
    `port` or a free one (PORT in its environment too), with `env` on top."""
    port = port or free_port()
    return spawn(name, [PYTHON, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                        "--no-access-log"], port=port, log_dir=log_dir,
                 cwd=ROOT / "services" / service, env={"PORT": str(port), **(env or {})})


def _answers(port: int, path: str | None) -> bool:
    try:
        if path is None:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        httpx.get(f"http://127.0.0.1:{port}{path}", timeout=0.5)
        return True
    except (OSError, httpx.HTTPError):
        return False


# The local Functions host (funchost/) and the worker settings Azure gets from the app settings.
HOST_CMD = [PYTHON, "-m", "funchost"]
# HEALTH_CHECK_SCHEDULE: the host resolves the timer's `%HEALTH_CHECK_SCHEDULE%` from it (the
# SPECS default, as in local.settings.sample.json); callers' env may override it.
WORKER_ENV = {"PYTHON_SCRIPT_FILE_NAME": "main.py", "PYTHON_ENABLE_INIT_INDEXING": "1",
              "HEALTH_CHECK_SCHEDULE": "*/10 * * * * *"}


def spawn_host(name: str, *, port: int, log_dir: Path, env: Mapping[str, str] | None = None,
               timeout: float = 60.0) -> Proc:
    """The app served by the local Functions host and the real worker on `port`."""
    return spawn(name, HOST_CMD, port=port, log_dir=log_dir,
                 env={**WORKER_ENV, **(env or {}), "PORT": str(port)}, timeout=timeout)


def export_tree(rev: str, into: Path) -> Path:
    """The files of commit `rev` (git archive) unpacked in `into`/base, for benchmarks that run
    an earlier tree beside the working one."""
    base = into / "base"
    base.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    return base
