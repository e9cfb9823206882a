"""Instructions per unary request that telemetry costs, counted by valgrind (callgrind): a
deterministic stand-in for CPU time where a shared machine's load makes timings too noisy to
resolve a few microseconds.

    .venv/bin/python load/telemetry_instructions.py [--trees TREE ...] [--requests 3000]
        [--log handler|line|none] [--without finish|metrics|backend] [--keep DIR]

For each tree (default: this one), two processes under `valgrind --tool=callgrind` with
PYTHONHASHSEED=0, each importing the tree's gateway modules, warming up with 200 requests
through the telemetry stage, then sending --requests unary requests through either the telemetry
stage (the request span, one attempt through its observer, the metrics, the request-log line
through funchost/worklog.py's handler to /dev/null: load/profile_telemetry.py's unary_setup,
which whole_request times) or a stage that only passes the attempt on. `--log line` makes the
line and writes nothing, `--log none` has no request log (unary_setup's modes). The difference
of their instruction counts divided by --requests is the figure. `--without` leaves one part
out of the stage's run (the figure less this one is that part's share); `--keep` keeps
callgrind's outputs for callgrind_annotate. Instructions are not cycles:
read a difference of a few percent between trees as a difference in work done, not as time.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve()

# The child: load/profile_telemetry.py's unary_setup (this tree's script, the measured tree's
# gateway modules: it imports them from the current directory), then the requests.
CHILD = r'''
import asyncio, os, sys
sys.path.insert(0, os.getcwd())
sys.path.insert(0, sys.argv[3])
from funchost import worklog
worklog.install().stream = open(os.devnull, "w")
from profile_telemetry import unary_setup

MODE, N = sys.argv[1], int(sys.argv[2])
WITHOUT = sys.argv[5]
if WITHOUT in ("finish", "metrics", "backend"):  # a part left out: its share by difference
    from function_app.telemetry import metrics, observe
    if WITHOUT == "finish":
        observe.Telemetry.finish = lambda *args: None
    elif WITHOUT == "metrics":
        metrics.GatewayMetrics.request_done = lambda *args: None
        metrics.GatewayMetrics.attempt_done = lambda *args: None
    else:
        observe.Telemetry.backend_of_url = lambda self, url: "node"
stage, bare, call_next, request = unary_setup(sys.argv[4])


async def run():
    for _ in range(200):
        await stage(request(), call_next)
    through = stage if MODE == "stage" else bare
    for _ in range(N):
        await through(request(), call_next)

asyncio.run(run())
'''


def callgrind_total(args: list[str], cwd: str, keep: str | None = None) -> int:
    """The instructions this interpreter executes running `args` in `cwd`, counted by valgrind's
    callgrind, with the hash seed fixed so that dict layouts repeat from run to run. `keep`: a
    path to keep callgrind's output at (for callgrind_annotate), else it is thrown away."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={keep or tmp + '/out'}",
             sys.executable, *args],
            cwd=cwd, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True,
            text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def instructions(tree: str, mode: str, requests: int, script: str, log: str,
                 keep: str | None = None, without: str = "nothing") -> int:
    out = None
    if keep:
        out = os.path.join(keep, f"{Path(tree).name}.{log}.{mode}.out")
    return callgrind_total([script, mode, str(requests), str(HERE.parent), log, without], tree,
                           out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", default=[str(HERE.parents[1])])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--log", choices=("handler", "line", "none"), default="handler",
                        help="the request log: written through the local worker's handler "
                        "(default), the line made and not written, or none")
    parser.add_argument("--without", choices=("nothing", "finish", "metrics", "backend"),
                        default="nothing", help="leave one part out (Telemetry.finish with the "
                        "request log; the two metrics updates; the backend look-up), so that "
                        "the full figure less this one is its share")
    parser.add_argument("--keep", metavar="DIR", help="keep callgrind's outputs in DIR "
                        "(TREE-NAME.LOG.stage|bare.out), for callgrind_annotate")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CHILD)
    try:
        jobs = [(tree, mode) for tree in args.trees for mode in ("stage", "bare")]
        with ThreadPoolExecutor(2) as pool:
            counts = dict(zip(jobs, pool.map(
                lambda job: instructions(job[0], job[1], args.requests, f.name, args.log,
                                         args.keep, args.without), jobs),
                strict=True))
    finally:
        os.unlink(f.name)
    print(f"instructions per unary request's telemetry (callgrind, {args.requests} requests, "
          f"request log: {args.log}, without: {args.without}; stage less pass-through):")
    for tree in args.trees:
        stage, bare = counts[(tree, "stage")], counts[(tree, "bare")]
        print(f"  {tree}: {(stage - bare) / args.requests:,.0f}  "
              f"(stage {stage:,}, pass-through {bare:,})")


if __name__ == "__main__":
    main()
