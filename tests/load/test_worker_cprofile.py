"""load/worker_cprofile/sitecustomize.py, the signal-switched profiler of profile_worker_calls.py:
each SIGUSR1..SIGUSR2 window's profile holds that window's calls only (a second round's file
once held the first's too, and the harness divided them by the second round's requests)."""

from __future__ import annotations

import os
import pstats
import subprocess
import sys
import textwrap
from pathlib import Path

from scripts.procs import ROOT

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path

    def counted_work():
        return None

    def window(calls):
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(calls):
            counted_work()
        os.kill(os.getpid(), signal.SIGUSR2)

    out = Path(os.environ["WORKER_CPROFILE_OUT"])
    window(3)
    (out / f"{os.getpid()}.prof").rename(out / "first.prof")
    window(5)
    (out / f"{os.getpid()}.prof").rename(out / "second.prof")
""")


def _calls(profile: Path) -> int:
    stats = pstats.Stats(str(profile)).stats
    return sum(calls for (_file, _line, name), (_cc, calls, *_rest) in stats.items()
               if name == "counted_work")


def test_each_window_counts_its_own_calls_only(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "load/worker_cprofile"),
           "WORKER_CPROFILE_OUT": str(tmp_path)}
    env.pop("WORKER_CPROFILE_GC_ONLY", None)
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, timeout=60)
    assert _calls(tmp_path / "first.prof") == 3
    assert _calls(tmp_path / "second.prof") == 5
