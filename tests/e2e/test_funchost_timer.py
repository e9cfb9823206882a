"""Timer triggers run on their schedule through the real worker, and again after a restart."""

import os
import signal
import time
from pathlib import Path

import pytest

from scripts.procs import HOST_CMD, WORKER_ENV, free_port, spawn

pytestmark = pytest.mark.e2e
APP = Path(__file__).parent / "timerapp"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_lines(path: Path, count: int, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(lines(path)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return lines(path)


def test_a_timer_function_runs_every_second_and_after_a_worker_restart(tmp_path):
    ticks = tmp_path / "ticks.txt"
    port = free_port()
    host = spawn("timer-host", [*HOST_CMD, "--app-dir", str(APP)], port=port,
                 log_dir=tmp_path, env={**WORKER_ENV, "PORT": str(port),
                                        "TICK_FILE": str(ticks)})
    try:
        assert len(wait_for_lines(ticks, 3)) >= 3  # run on startup, then each second
        assert all(line.startswith("past_due=") for line in lines(ticks))
        worker = next(p for p in Path("/proc").iterdir() if p.name.isdigit()
                      and b"funchost.worker" in _cmdline(p) and str(APP).encode() in _cmdline(p))
        os.kill(int(worker.name), signal.SIGKILL)
        before = len(lines(ticks))
        assert len(wait_for_lines(ticks, before + 2)) >= before + 2
    finally:
        host.stop()


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
