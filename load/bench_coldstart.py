"""Cold start, before and after, interleaved: the import of main.py (what the worker does to
index the functions) and start-to-first-answered-request through the local Functions host.

    .venv/bin/python load/bench_coldstart.py [--base 6a21fad] [--runs 5]

`--base` is a commit to compare with (checked out with `git archive` into a temporary folder and
run with this venv); runs alternate between it and the working tree. Per run: wall time of a
fresh `python -c "import main"`, and the time from starting the host (`python -m funchost`,
the real worker, limits off) to the first 200 of POST /infer/node (the gateway's first build
included) against the instant Node simulator; and the CPU time of the import, of the import
plus the gateway's first build (no storage), and of the platform's modules alone (the floor).
Prints medians and writes
load/results/bench_coldstart.json; `python -X importtime -c "import main"` shows the detail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.procs import (  # noqa: E402
    INSTANT,
    PYTHON,
    WORKER_ENV,
    export_tree,
    free_port,
    spawn_node,
)

# CPU time (user + system) is what a loaded machine disturbs least: of the import of main.py, of
# the platform's own modules alone (the floor no app code can go under: azure.functions and the
# FastAPI extension every HTTP function here needs), and of the import plus the gateway's first
# build without storage or exporters (what the first request pays on top of indexing).
FLOOR = "import azure.functions, azurefunctions.extensions.http.fastapi"
BUILD = ("import asyncio, os; os.environ.update(PY_SERVICE_URL='http://127.0.0.1:9', "
         "NODE_SERVICE_URL='http://127.0.0.1:9'); import main; "
         "from function_app.app import gateway; "
         "asyncio.run(gateway.get()); asyncio.run(gateway.aclose())")


def cpu_s(code: str, tree: Path) -> float:
    """User + system CPU seconds of a fresh `python -c code` in `tree`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([PYTHON, "-c", code], cwd=tree, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def import_s(tree: Path) -> float:
    began = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import main"], cwd=tree, check=True)
    return time.perf_counter() - began


def first_request_s(tree: Path, backend: str, logs: Path) -> float:
    """Start the host on `tree`, wait for the first 200 of POST /infer/node, stop it."""
    port = free_port()
    env = {**os.environ, **WORKER_ENV, "PORT": str(port), "NODE_SERVICE_URL": backend,
           "RATE_LIMIT_ENABLED": "false", "PYTHONPATH": str(tree)}
    with open(logs / f"host-{port}.log", "wb") as log:
        began = time.perf_counter()
        host = subprocess.Popen([PYTHON, "-m", "funchost", "--app-dir", str(tree)], cwd=tree,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        while time.perf_counter() - began < 120:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/infer/node", timeout=30,
                                    json={"prompt": "cold"})
                if answer.status_code == 200:
                    return time.perf_counter() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"no 200 from the host on {tree} within 120 s")
    finally:
        os.killpg(host.pid, 15)
        host.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="6a21fad")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "load/results/bench_coldstart.json"))
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="coldstart-"))
    trees = {f"base ({args.base})": export_tree(args.base, logs), "now": ROOT}
    backend = spawn_node("backend", logs, INSTANT)
    measures = ("import_s", "import_cpu_s", "build_cpu_s", "first_request_s")
    runs: dict[str, dict[str, list[float]]] = {t: {m: [] for m in measures} for t in trees}
    floor: list[float] = []
    try:
        for k in range(args.runs):
            for name, tree in (list(trees.items())[:: 1 if k % 2 == 0 else -1]):
                runs[name]["import_s"].append(import_s(tree))
                runs[name]["import_cpu_s"].append(cpu_s("import main", tree))
                runs[name]["build_cpu_s"].append(cpu_s(BUILD, tree))
                runs[name]["first_request_s"].append(first_request_s(tree, backend.url, logs))
            floor.append(cpu_s(FLOOR, ROOT))
    finally:
        backend.stop()
    result = {t: {k: {"median": statistics.median(v), "runs": v} for k, v in r.items()}
              for t, r in runs.items()}
    print(f"load average {os.getloadavg()[0]:.1f}, {args.runs} runs each, interleaved\n")
    print("| tree | import main.py s | its CPU s | import + first build, CPU s | "
          "start to first answered request s |")
    print("|---|---:|---:|---:|---:|")
    for t, r in result.items():
        print(f"| {t} | {r['import_s']['median']:.2f} | {r['import_cpu_s']['median']:.3f} | "
              f"{r['build_cpu_s']['median']:.3f} | {r['first_request_s']['median']:.2f} |")
    print(f"\nmedians; the platform's modules alone ({FLOOR}): "
          f"{statistics.median(floor):.3f} s CPU")
    result["platform floor"] = {"import_cpu_s": {"median": statistics.median(floor),
                                                 "runs": floor}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": result, "args": vars(args),
                                          "load_average": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
