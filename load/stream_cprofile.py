"""cProfile of the worker over one round of streams (load/profile_streams.py --cprofile).

The worker loads load/worker_cprofile/sitecustomize.py (PYTHONPATH), which profiles between
SIGUSR1 and SIGUSR2; `counting` brackets a round with them and `per_chunk` prints each
function's calls and own time per data event the clients received. cProfile's own overhead
inflates every figure (more for many small calls): read them against each other, and compare
calls per chunk between trees, not the microseconds with profile_streams.py's CPU figures.
"""

from __future__ import annotations

import os
import pstats
import signal
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOOK = str(ROOT / "load/worker_cprofile")


def hook_env(out: Path) -> dict[str, str]:
    """The environment that makes a worker profile between the signals, writing into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    return {"PYTHONPATH": HOOK, "WORKER_CPROFILE_OUT": str(out)}


def counting[T](worker: int, out: Path, run: Callable[[], T]) -> tuple[T, Path]:
    """`run()` with the worker's profiler on; its result and the profile's path."""
    for stale in out.glob(f"{worker}.*"):
        stale.unlink()
    os.kill(worker, signal.SIGUSR1)
    time.sleep(0.2)
    result = run()
    os.kill(worker, signal.SIGUSR2)
    prof = out / f"{worker}.prof"
    for _ in range(300):
        if prof.exists() and (out / f"{worker}.gc.json").exists():
            break
        time.sleep(0.1)
    return result, prof


def per_chunk(prof: Path, events: int, top: int) -> str:
    """The `top` functions by own time: calls and own µs per data event, and the totals."""
    stats = pstats.Stats(str(prof))
    rows = []
    calls_total = own_total = 0.0
    for (path, line, name), (_cc, calls, own, _cum, _callers) in stats.stats.items():
        short = path.split("site-packages/")[-1] if "site-packages" in path \
            else path.replace(str(ROOT) + "/", "")
        rows.append((own * 1e6 / events, calls / events, f"{short}:{line}({name})"))
        calls_total += calls / events
        own_total += own * 1e6 / events
    rows.sort(reverse=True)
    lines = [f"worker cProfile over {events} data events: {calls_total:.1f} calls and "
             f"{own_total:.1f} µs (profiled) per chunk", "",
             "| own µs / chunk | calls / chunk | function |", "|---:|---:|---|"]
    lines += [f"| {own:.2f} | {calls:.2f} | `{name}` |" for own, calls, name in rows[:top]]
    return "\n".join(lines)
