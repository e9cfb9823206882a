"""Instructions the worker executes over one round of streams (load/profile_streams.py
--callgrind): a deterministic stand-in for CPU per chunk where `perf stat -e instructions` is
not supported (this VM has no hardware counters) and timings move with the machine's load.

The worker runs under callgrind with instrumentation off (load/worker_callgrind/sitecustomize.py).
`instrument` turns it on once, after the warm-up; `counting` zeroes the counters, runs the
round and dumps them: the instructions of that round alone (`Ir`, the worker's every thread).
Instructions are not cycles: compare trees by them, and read microseconds elsewhere.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOK = str(ROOT / "load/worker_callgrind")


def hook_env(out: Path) -> dict[str, str]:
    """The environment that makes the worker run under callgrind, dumping into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    return {"PYTHONPATH": HOOK, "WORKER_CALLGRIND_OUT": str(out), "PYTHONHASHSEED": "0"}


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True,
                   timeout=300)


def instrument(pid: int) -> None:
    control(pid, "-i", "on")


def summary(path: Path) -> int:
    """The instruction count of one callgrind dump (its `summary:` or `totals:` line)."""
    text = path.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.M)
    if found is None:
        raise ValueError(f"no instruction total in {path}")
    return int(found.group(1))


def counting[T](pid: int, out: Path, run: Callable[[], T]) -> tuple[T, int]:
    """`run()` with the worker's counters zeroed before and dumped after; its result and the
    instructions the worker executed meanwhile."""
    before = set(out.glob(f"{pid}.out*"))
    control(pid, "-z")
    result = run()
    control(pid, "-d")
    for _ in range(600):
        fresh = sorted(set(out.glob(f"{pid}.out*")) - before, key=lambda p: p.stat().st_mtime)
        if fresh:
            time.sleep(0.2)  # written whole before callgrind_control returns; be safe
            return result, sum(summary(p) for p in fresh)
        time.sleep(0.1)
    raise TimeoutError(f"no callgrind dump from worker {pid}")
