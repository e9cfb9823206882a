"""Cold start, before and after, interleaved: the import of main.py (what the worker does to
index the functions) and start-to-first-answered-request through the local Functions host.

    .venv/bin/python load/bench_coldstart.py [--base 6a21fad] [--runs 5]
    .venv/bin/python load/bench_coldstart.py --import-only --base main --runs 10 [--compiled]

`--base` is a commit to compare with (checked out with `git archive` into a temporary folder and
run with this venv); runs alternate between it and the working tree. Per run: wall time of a
fresh `python -c "import main"`, and the time from starting the host (`python -m funchost`,
the real worker, limits off) to the first 200 of POST /infer/node (the gateway's first build
included) against the instant Node simulator; and the CPU time of the import, of the import
plus the gateway's first build (no storage), and of the platform's modules alone (the floor).

CPU is measured two ways: the whole `python -c` process (interpreter start and exit included,
as `time python -c "import main"` sees it) and in the process around the import and around the
first build (`time.process_time()`: what the worker pays when it indexes, and what the first
request pays on top). The platform's floor (azure.functions + the FastAPI extension: what
load/tenline/main.py pays before its own aiohttp) and the ten-line function's own import are
measured in the same rounds, so the gateway's share is main.py minus the floor.

`--import-only` skips the host (no Node backend): the CPU measures only, paired. Children run
with PYTHONDONTWRITEBYTECODE=1, so the gateway's own modules are compiled from source in every
run (the deployed package ships no __pycache__: .funcignore); `--compiled` gives each tree its
own warmed PYTHONPYCACHEPREFIX instead (every module from bytecode). Prints medians and writes
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
# In the process: CPU seconds of the import alone and of the first build alone, printed as JSON.
CLOCKED = ("import json, os, time; os.environ.update(PY_SERVICE_URL='http://127.0.0.1:9', "
           "NODE_SERVICE_URL='http://127.0.0.1:9'); t0 = time.process_time(); {imports}; "
           "t1 = time.process_time(); {build}; "
           "print(json.dumps([t1 - t0, time.process_time() - t1]))")
CLOCKED_MAIN = CLOCKED.format(imports="import main", build=(
    "import asyncio; from function_app.app import gateway; asyncio.run(gateway.get()); "
    "t2 = time.process_time(); asyncio.run(gateway.aclose())"
)).replace("time.process_time() - t1", "t2 - t1")
CLOCKED_FLOOR = CLOCKED.format(imports=FLOOR, build="pass")
TENLINE = "import sys; sys.path.insert(0, 'load/tenline'); import main"
CLOCKED_TENLINE = CLOCKED.format(imports=TENLINE, build="pass")
CHILD_ENV: dict[str, str] = {}  # set in main(): the bytecode policy of every child


def cpu_s(code: str, tree: Path, env: dict[str, str] | None = None) -> float:
    """User + system CPU seconds of a fresh `python -c code` in `tree`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([PYTHON, "-c", code], cwd=tree, check=True, capture_output=True,
                   env={**os.environ, **CHILD_ENV, **(env or {})})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def clocked(code: str, tree: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """The in-process CPU seconds `code` prints: (its imports, its build)."""
    out = subprocess.run([PYTHON, "-c", code], cwd=tree, check=True, capture_output=True,
                         text=True, env={**os.environ, **CHILD_ENV, **(env or {})}).stdout
    first, second = json.loads(out.splitlines()[-1])
    return first, second


def import_s(tree: Path, env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run([PYTHON, "-c", "import main"], cwd=tree, check=True,
                   env={**os.environ, **CHILD_ENV, **(env or {})})
    return time.perf_counter() - began


def first_request_s(tree: Path, backend: str, logs: Path) -> float:
    """Start the host on `tree`, wait for the first 200 of POST /infer/node, stop it."""
    port = free_port()
    env = {**os.environ, **CHILD_ENV, **WORKER_ENV, "PORT": str(port), "NODE_SERVICE_URL": backend,
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


def pycache_env(tree: Path, logs: Path, name: str) -> dict[str, str]:
    """A PYTHONPYCACHEPREFIX of the tree's own, warmed by one import and build that write it."""
    prefix = logs / f"pycache-{name}"
    subprocess.run([PYTHON, "-c", BUILD], cwd=tree, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPYCACHEPREFIX": str(prefix),
                        "PYTHONDONTWRITEBYTECODE": ""})
    subprocess.run([PYTHON, "-c", TENLINE], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPYCACHEPREFIX": str(prefix),
                        "PYTHONDONTWRITEBYTECODE": ""})
    return {"PYTHONPYCACHEPREFIX": str(prefix)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="6a21fad")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--import-only", action="store_true",
                        help="CPU of the import and first build only, no host (paired rounds)")
    parser.add_argument("--compiled", action="store_true",
                        help="every module from bytecode (a warmed cache per tree), not source")
    parser.add_argument("--out", default=str(ROOT / "load/results/bench_coldstart.json"))
    args = parser.parse_args()
    CHILD_ENV["PYTHONDONTWRITEBYTECODE"] = "1"
    logs = Path(tempfile.mkdtemp(prefix="coldstart-"))
    trees = {f"base ({args.base})": export_tree(args.base, logs), "now": ROOT}
    envs = {t: (pycache_env(tree, logs, str(k)) if args.compiled else {})
            for k, (t, tree) in enumerate(trees.items())}
    backend = None if args.import_only else spawn_node("backend", logs, INSTANT)
    measures = ("import_s", "import_cpu_s", "build_cpu_s", "import_in_process_cpu_s",
                "first_build_in_process_cpu_s") + (() if args.import_only else
                                                   ("first_request_s",))
    runs: dict[str, dict[str, list[float]]] = {t: {m: [] for m in measures} for t in trees}
    refs: dict[str, list[float]] = {m: [] for m in (
        "floor_cpu_s", "floor_in_process_cpu_s", "tenline_cpu_s", "tenline_in_process_cpu_s")}
    ref_env = envs["now"]
    try:
        for k in range(args.runs):
            for name, tree in (list(trees.items())[:: 1 if k % 2 == 0 else -1]):
                env = envs[name]
                runs[name]["import_s"].append(import_s(tree, env))
                runs[name]["import_cpu_s"].append(cpu_s("import main", tree, env))
                runs[name]["build_cpu_s"].append(cpu_s(BUILD, tree, env))
                imported, built = clocked(CLOCKED_MAIN, tree, env)
                runs[name]["import_in_process_cpu_s"].append(imported)
                runs[name]["first_build_in_process_cpu_s"].append(built)
                if backend is not None:
                    runs[name]["first_request_s"].append(
                        first_request_s(tree, backend.url, logs))
            refs["floor_cpu_s"].append(cpu_s(FLOOR, ROOT, ref_env))
            refs["floor_in_process_cpu_s"].append(clocked(CLOCKED_FLOOR, ROOT, ref_env)[0])
            refs["tenline_cpu_s"].append(cpu_s(TENLINE, ROOT, ref_env))
            refs["tenline_in_process_cpu_s"].append(clocked(CLOCKED_TENLINE, ROOT, ref_env)[0])
    finally:
        if backend is not None:
            backend.stop()
    result = {t: {k: {"median": statistics.median(v), "runs": v} for k, v in r.items()}
              for t, r in runs.items()}
    print(f"load average {os.getloadavg()[0]:.1f}, {args.runs} runs each, interleaved, "
          f"{'bytecode (warmed cache)' if args.compiled else 'gateway compiled from source'}\n")
    print("| tree | import main.py s | its CPU s (process) | in process | "
          "first build in process | import + first build, CPU s (process) |"
          + ("" if args.import_only else " start to first answered request s |"))
    print("|---|---:|---:|---:|---:|---:|" + ("" if args.import_only else "---:|"))
    for t, r in result.items():
        print(f"| {t} | {r['import_s']['median']:.2f} | {r['import_cpu_s']['median']:.3f} | "
              f"{r['import_in_process_cpu_s']['median']:.3f} | "
              f"{r['first_build_in_process_cpu_s']['median']:.3f} | "
              f"{r['build_cpu_s']['median']:.3f} |"
              + ("" if args.import_only else f" {r['first_request_s']['median']:.2f} |"))
    med = {k: statistics.median(v) for k, v in refs.items()}
    print(f"\nmedians; the platform's modules alone ({FLOOR}): {med['floor_cpu_s']:.3f} s CPU "
          f"(process), {med['floor_in_process_cpu_s']:.3f} in process; the ten-line function's "
          f"main.py: {med['tenline_cpu_s']:.3f} (process), "
          f"{med['tenline_in_process_cpu_s']:.3f} in process")
    result["platform floor"] = {"import_cpu_s": {"median": med["floor_cpu_s"],
                                                 "runs": refs["floor_cpu_s"]},
                                "import_in_process_cpu_s": {
                                    "median": med["floor_in_process_cpu_s"],
                                    "runs": refs["floor_in_process_cpu_s"]}}
    result["ten-line function"] = {"import_cpu_s": {"median": med["tenline_cpu_s"],
                                                    "runs": refs["tenline_cpu_s"]},
                                   "import_in_process_cpu_s": {
                                       "median": med["tenline_in_process_cpu_s"],
                                       "runs": refs["tenline_in_process_cpu_s"]}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": result, "args": vars(args),
                                          "load_average": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
