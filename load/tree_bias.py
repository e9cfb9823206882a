"""Does the directory a gateway runs from change what it costs? The same commit, run from the
working tree and from `git archive` exports, through the same local host and real worker.

    .venv/bin/python load/tree_bias.py [--rev HEAD] [--add NAME ...] [--streams 200]
        [--rounds 6] [--stream-s 5] [--cprofile] [--start-order work-first|export-first]

The trees: `work` (this working tree, as load/bench_streams.py and load/profile_streams.py run
it), `export` (`git archive REV`, as their --base runs it), and for each --add NAME a copy of the
export with one of the working tree's untracked things added (`venv`: a .venv directory holding
the working tree's files by hard link; `node_modules`, likewise; `settings`:
local.settings.json from local.settings.sample.json; `pycache`: every module compiled into
__pycache__). Each tree gets the setup of load/profile_streams.py (an OpenAI route to the lean
simulator, limits far from binding in memory, cache and telemetry on), started in
--start-order. With --cprofile, one round per tree first counts the worker's Python calls per
streamed chunk (cProfile, deterministic: it does not move with the machine's load), and
with --strace that round counts the worker's syscalls per chunk instead (a file looked up or
read per chunk would show as stat/openat/read). Then --rounds rounds alternate between the
trees (order reversed every other round), each reading the host's and the worker's CPU per
chunk from /proc over --streams streams. --load requests drives wrk's POST /infer/node at the
instant Node simulator instead (CPU per request, limits off; the path `make bench` measures).
--copies K starts K processes of each tree: the spread between two processes of the same tree
is what a difference between trees has to exceed. --hash-seed fixes PYTHONHASHSEED for all.
Prints per tree the calls per chunk, the rounds' CPU and their medians, worker / host (the host
runs the same code everywhere, so the ratio takes out how busy the machine was), the pairs each
tree won against `work`, and the load averages; writes load/results/tree_bias.json. Pass 10
(docs/perf/pass10-bias.md) has the runs.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import WRK_LUA, cpu_seconds, host_and_worker  # noqa: E402
from bench_streams import phase, raise_fd_limit, simulator  # noqa: E402
from profile_streams import gateway, measured, strace, syscalls  # noqa: E402
from profile_worker_calls import drive  # noqa: E402
from stream_cprofile import counting, hook_env  # noqa: E402

from scripts.procs import (  # noqa: E402
    HOST_CMD,
    INSTANT,
    WORKER_ENV,
    export_tree,
    free_port,
    spawn,
    spawn_node,
)

PROFILES = ROOT / "load/results/tree-bias-cprofile"


def linked_copy(source: Path, target: Path) -> None:
    """`source` copied into `target` by hard links (as big as the real one to scan, no disk)."""
    shutil.copytree(source, target, symlinks=True, copy_function=os.link)


def added(export: Path, logs: Path, name: str) -> Path:
    """A copy of the export with the working tree's `name` added."""
    tree = logs / f"export-{name}"
    shutil.copytree(export, tree, symlinks=True)
    if name == "venv":
        linked_copy(ROOT / ".venv", tree / ".venv")
    elif name == "node_modules":
        linked_copy(ROOT / "node_modules", tree / "node_modules")
    elif name == "settings":
        sample = json.loads((tree / "local.settings.sample.json").read_text())
        (tree / "local.settings.json").write_text(json.dumps(sample))
    elif name == "pycache":
        compileall.compile_dir(str(tree / "function_app"), quiet=1)
        compileall.compile_file(str(tree / "main.py"), quiet=1)
    else:
        raise SystemExit(f"--add {name}: one of venv, node_modules, settings, pycache")
    return tree


def trees(args, logs: Path) -> dict[str, Path]:
    """The trees by name; with --copies K, K processes of each (`work`, `work#2`, ...): the
    spread between two processes of one tree is what a difference between trees must beat."""
    export = export_tree(args.rev, logs)
    found = {"work": ROOT, "export": export}
    found.update({f"export+{name}": added(export, logs, name) for name in args.add})
    return copies(found, args.copies, args.start_order)


def copies(found: dict[str, Path], count: int, order: str) -> dict[str, Path]:
    """Each tree `count` times (the second `work#2`, ...), in start order: as given, each
    copy after the last tree's previous one, or (`export-first`) all of it reversed."""
    named = {(name if k == 0 else f"{name}#{k + 1}"): tree
             for k in range(count) for name, tree in found.items()}
    return dict(reversed(named.items())) if order == "export-first" else named


def request_gateway(tree: Path, logs: Path, backend: str, name: str, extra: dict[str, str]):
    """The gateway of `tree` as load/profile_worker_calls.py starts it (limits off), run from
    `tree` (host and worker) as bench_streams.py --base runs an export."""
    port = free_port()
    return spawn(name, HOST_CMD, port=port, log_dir=logs, timeout=120, cwd=tree,
                 env={**WORKER_ENV, **extra, "RATE_LIMIT_ENABLED": "false", "PORT": str(port),
                      "NODE_SERVICE_URL": backend})


def requests_round(url: str, pids: tuple[int, int], args, script: Path) -> dict:
    """wrk for --seconds; host and worker CPU per request (/proc)."""
    before = [cpu_seconds(p) for p in pids]
    done = drive(url, args.seconds, args.connections, script)
    host, worker = (cpu_seconds(p) - b for p, b in zip(pids, before, strict=True))
    return {"requests": done, "errors": 0, "host_us_per_chunk": host / done * 1e6,
            "worker_us_per_chunk": worker / done * 1e6}


def by_function(prof: Path, events: int) -> dict[str, float]:
    """Calls per chunk of each function, keyed without the folder it ran from."""
    table: dict[str, float] = {}
    for (path, line, name), (_cc, calls, *_rest) in pstats.Stats(str(prof)).stats.items():
        key = f"{Path(path).name}:{line}({name})"  # the tree's own path left out
        table[key] = table.get(key, 0.0) + calls / events
    return table


def differences(rows: dict[str, dict], top: int = 12) -> str:
    """The functions whose calls per chunk differ most between `work` and each other tree."""
    lines = []
    work = rows["work"].get("by_function", {})
    for name, row in rows.items():
        other = row.get("by_function")
        if name == "work" or other is None:
            continue
        keys = sorted(set(work) | set(other),
                      key=lambda k: -abs(work.get(k, 0.0) - other.get(k, 0.0)))
        lines += ["", f"calls per chunk, work vs {name} (largest differences):"]
        lines += [f"{work.get(k, 0.0):8.3f} {other.get(k, 0.0):8.3f}  {k}" for k in keys[:top]]
    return "\n".join(lines)


def counted_round(args, gateways: dict, rows: dict) -> None:
    """One round per tree under cProfile (calls per chunk) and, with --strace, strace -c
    (syscalls per chunk) of its worker."""
    for name, (url, pids) in gateways.items():
        tracing = strace(pids[1], args) if args.strace else None
        if args.cprofile:
            row, prof = counting(pids[1], PROFILES, lambda u=url, p=pids: measured(
                u, p, args.streams, args))
            rows[name]["by_function"] = by_function(prof, row["events"])
            rows[name]["calls_per_chunk"] = sum(rows[name]["by_function"].values())
            print(name, "calls per chunk", round(rows[name]["calls_per_chunk"], 2), flush=True)
        else:
            measured(url, pids, args.streams, args)
        if tracing is not None:
            rows[name]["worker_syscalls_per_chunk"] = syscalls(tracing, args)
            print(name, "worker syscalls per chunk", rows[name]["worker_syscalls_per_chunk"],
                  flush=True)


def traced_requests(args, gateways: dict, rows: dict, script: Path) -> None:
    """--load requests --strace: per tree, the worker's syscalls per request over a round
    (strace -c for all but the round's last second, so it ends before wrk does)."""
    window = max(1, args.seconds - 1)
    for name, (url, pids) in gateways.items():
        tracing = subprocess.Popen(["timeout", str(window), "strace", "-c", "-f", "-q", "-p",
                                    str(pids[1])], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        done = requests_round(url, pids, args, script)["requests"]
        _, err = tracing.communicate(timeout=60)
        per = done * window / args.seconds  # the requests inside the traced window
        rows[name]["worker_syscalls_per_request"] = {
            cells[-1]: round(int(cells[3]) / per, 3)
            for cells in (line.split() for line in err.decode(errors="replace").splitlines())
            if len(cells) >= 5 and cells[0][0].isdigit() and cells[-1] != "total"}
        print(name, "worker syscalls per request", rows[name]["worker_syscalls_per_request"],
              flush=True)


def run(args, gateways: dict, script: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {name: {"rounds": []} for name in gateways}
    if (args.cprofile or args.strace) and args.load == "streams":
        counted_round(args, gateways, rows)
    elif args.strace:
        traced_requests(args, gateways, rows, script)
    names = list(gateways)
    for k in range(args.rounds):
        for name in names if k % 2 == 0 else names[::-1]:
            url, pids = gateways[name]
            row = measured(url, pids, args.streams, args) if args.load == "streams" \
                else requests_round(url, pids, args, script)
            row["load"] = os.getloadavg()[0]
            rows[name]["rounds"].append(row)
            print(k, name, f"worker {row['worker_us_per_chunk']:.0f} host "
                  f"{row['host_us_per_chunk']:.0f} µs/chunk, errors {row['errors']}, load "
                  f"{row['load']:.1f}", flush=True)
    return rows


def summary(rows: dict[str, dict]) -> str:
    work = [r["worker_us_per_chunk"] for r in rows["work"]["rounds"]]
    lines = ["| tree | calls / chunk | worker µs / chunk (rounds) | median | host median | "
             "worker / host | lower than work in pairs |", "|---|---:|---|---:|---:|---:|---:|"]
    for name, row in rows.items():
        worker = [r["worker_us_per_chunk"] for r in row["rounds"]]
        host = [r["host_us_per_chunk"] for r in row["rounds"]]
        ratio = statistics.median(w / h for w, h in zip(worker, host, strict=True))
        wins = sum(w < o for w, o in zip(worker, work, strict=True))
        calls = row.get("calls_per_chunk")
        lines.append(f"| {name} | {'n/a' if calls is None else f'{calls:.2f}'} | "
                     f"{' / '.join(f'{w:.0f}' for w in worker)} | "
                     f"{statistics.median(worker):.0f} | {statistics.median(host):.0f} | "
                     f"{ratio:.2f} | {'-' if name == 'work' else f'{wins} of {len(work)}'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--add", action="append", default=[],
                        choices=("venv", "node_modules", "settings", "pycache"))
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--stream-s", type=float, default=5.0)
    parser.add_argument("--ramp-s", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--client", default="raw")
    parser.add_argument("--sim", default="lean")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--strace", action="store_true",
                        help="the worker's syscalls per chunk (strace -c) in the counted round")
    parser.add_argument("--load", choices=("streams", "requests"), default="streams",
                        help="streamed completions (CPU per chunk) or wrk's POST /infer/node "
                        "to the instant Node simulator (CPU per request; --seconds, "
                        "--connections)")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--copies", type=int, default=1,
                        help="processes of each tree (a control: the spread within a tree)")
    parser.add_argument("--hash-seed", default=None,
                        help="PYTHONHASHSEED for every host and worker (default: random each)")
    parser.add_argument("--start-order", choices=("work-first", "export-first"),
                        default="work-first")
    args = parser.parse_args()
    raise_fd_limit()
    load_start = os.getloadavg()
    logs = Path(tempfile.mkdtemp(prefix="tree-bias-"))
    if args.cprofile and args.strace:
        parser.error("--cprofile and --strace: one at a time (strace slows what it traces)")
    if args.cprofile and args.load == "requests":
        parser.error("--cprofile counts chunks; for requests: profile_worker_calls.py --base")
    streams = args.load == "streams"
    sim = simulator(logs, args) if streams else spawn_node("backend", logs, INSTANT)
    procs, gateways = [sim], {}
    hook = {**(hook_env(PROFILES) if args.cprofile else {}),
            **({"PYTHONHASHSEED": args.hash_seed} if args.hash_seed is not None else {})}
    script = logs / "post.lua"
    script.write_text(WRK_LUA)
    try:
        for k, (name, tree) in enumerate(trees(args, logs).items()):
            if streams:
                proc = gateway(tree, logs, sim.url, f"gateway{k}", args.streams, hook)
                url = f"{proc.url}/v1/chat/completions"
                phase(url, 10, argparse.Namespace(**{**vars(args), "stream_s": 0.5,
                                                     "ramp_s": 0.2}), None)
            else:
                proc = request_gateway(tree, logs, sim.url, f"gateway{k}", hook)
                url = f"{proc.url}/infer/node"
                drive(url, 2, args.connections, script)  # warm-up
            procs.append(proc)
            gateways[name] = (url, host_and_worker(proc))
        rows = run(args, gateways, script)
    finally:
        for proc in reversed(procs):
            proc.stop()
    what = f"{args.streams} streams x {args.stream_s:.0f} s" if streams else \
        f"wrk {args.connections} connections x {args.seconds} s (µs per request)"
    print(f"{what}, rev {args.rev}, hash seed {args.hash_seed or 'random'}, start order "
          f"{list(gateways)}, load average {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print(summary(rows))
    print(differences(rows))
    out = ROOT / "load/results/tree_bias.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "args": vars(args), "order": list(gateways),
                               "load_average_start": load_start,
                               "load_average": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
