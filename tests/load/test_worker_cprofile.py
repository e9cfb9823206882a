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


GARBAGE_CHILD = textwrap.dedent("""
    import gc, os, signal

    class Cycle:
        def send(self):
            pass

    os.kill(os.getpid(), signal.SIGUSR1)
    for _ in range(50):  # a scope-and-send shaped cycle: an object whose dict holds its method
        made = Cycle()
        made.scope = {"send": made.send}
    del made
    kept = [[n] for n in range(300)]  # young objects that live on
    gc.collect(0)
    os.kill(os.getpid(), signal.SIGUSR2)
""")


def test_a_window_reports_each_generation_and_a_cycle_of_the_garbage(tmp_path: Path) -> None:
    """Per generation: collections, objects walked and freed; and with WORKER_CPROFILE_GARBAGE
    one reference path from a garbage object back to itself."""
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT / "load/worker_cprofile"),
           "WORKER_CPROFILE_OUT": str(tmp_path), "WORKER_CPROFILE_GC_ONLY": "1",
           "WORKER_CPROFILE_GARBAGE": "1"}
    subprocess.run([sys.executable, "-c", GARBAGE_CHILD], env=env, check=True, timeout=60)
    (stats_file,) = tmp_path.glob("*.gc.json")
    stats = json.loads(stats_file.read_text())
    assert stats["count"][0] >= 1 and len(stats["walked"]) == 3
    assert stats["walked"][0] >= 300  # the young objects alive at the collection
    assert stats["max_walked"][0] <= stats["walked"][0]
    assert stats["garbage"]["Cycle"] == 50  # SAVEALL keeps them: counted, not freed
    (cycles,) = tmp_path.glob("*.cycles.txt")
    assert "Cycle:\n    Cycle\n    .scope -> dict\n    ['send'] -> method\n    .__self__ -> Cycle" \
        in cycles.read_text()
