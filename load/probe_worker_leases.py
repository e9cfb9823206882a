"""How long the limiter's leases take inside the real worker, after pauses as in `make bench`.

    .venv/bin/python load/probe_worker_leases.py [--slices 6] [--pause 10] [--rate 200] [--base REV]
        [--stalls]

One gateway with the defaults (limits on far from binding, rows on a local Azurite; from the
tree of commit --base REV if given) on the local host and the real worker, whose worker loads
load/worker_leasetime/sitecustomize.py (PYTHONPATH): every lease is timed there, each Table call
in phases (see that file). After a 1 s warm-up, --slices slices of 2 s at --rate requests/s
against the 30-50 ms simulator, --pause idle seconds before each. Prints each lease made for
waiting requests (its round trip and phases), every lease's p50/max by kind, and the slowest of
each slice's first ten requests as the client saw them; --stalls adds the worker loop's stack
samples while it lags (GIL-biased: a sample is taken when the loop thread lets go of the GIL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, open_loop  # noqa: E402

from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import HOST_CMD, WORKER_ENV, export_tree, free_port, spawn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--pause", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--base", metavar="REV",
                        help="run the gateway from that commit's tree (git archive) instead")
    parser.add_argument("--stalls", action="store_true",
                        help="sample the worker loop's stack while it is over 3 ms late")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="probe-leases-"))
    leases = logs / "leases.txt"
    azurite = Azurite(logs / "azurite").start()
    port, slow_port = free_port(), free_port()
    slow = spawn("slow-backend", ["node", "server.js"], port=slow_port, log_dir=logs,
                 cwd=ROOT / "services/node",
                 env={"PORT": str(slow_port), "LATENCY_MIN_MS": "30", "LATENCY_MAX_MS": "50"})
    tree = ["--app-dir", str(export_tree(args.base, logs))] if args.base else []
    gateway = spawn("gateway", [*HOST_CMD, *tree], port=port, log_dir=logs, timeout=120, env={
        **WORKER_ENV, **FAR, "PORT": str(port), "PY_SERVICE_URL": slow.url,
        "NODE_SERVICE_URL": slow.url,
        "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
        "PYTHONPATH": str(ROOT / "load/worker_leasetime"), "WORKER_LEASE_LOG": str(leases),
        **({"WORKER_LEASE_STALLS": "1"} if args.stalls else {})})
    url = f"{gateway.url}/infer/python"
    try:
        httpx.get(f"{gateway.url}/healthz", timeout=10)
        asyncio.run(open_loop(url, args.rate, 1.0))
        starts = []
        for _ in range(args.slices):
            time.sleep(args.pause)
            starts.append(time.time())
            got = asyncio.run(open_loop(url, args.rate, 2.0))
            print(f"slice at {starts[-1]:.1f}: first ten requests' longest "
                  f"{max(got['latencies'][:10]):.1f} ms (completion order), p99 "
                  f"{sorted(got['latencies'])[int(0.99 * len(got['latencies']))]:.1f} ms")
    finally:
        gateway.stop()
        slow.stop()
        azurite.stop()
    report(leases.read_text().splitlines())
    stalls = Path(f"{leases}.stalls")
    if stalls.exists():
        report_stalls(stalls.read_text().splitlines(), starts)
    print(f"logs: {logs}")


def _call_text(call: dict) -> str:
    """One Table call's phases, ms from the lease's start (sitecustomize.py's `_phases`)."""
    conn = (f"connect {call['connect_start']:.1f}-{call['connect_end']:.1f}"
            if "connect_start" in call else "reused" if "reuse" in call else "conn ?")
    marks = " ".join(f"{name} {call[name]:.1f}" for name in
                     ("send", "request", "sent", "end", "back", "done") if name in call)
    return f"{call.get('method', '?')} [{conn}; {marks}]"


def report_stalls(lines: list[str], starts: list[float]) -> None:
    """The loop's stack samples while late, counted by innermost frames: all, and those within
    the first 0.3 s of a slice (when the first lease after the pause runs)."""
    every: Counter[str] = Counter()
    early: Counter[str] = Counter()
    for line in lines:
        wall, where = line.split(" ", 1)
        every[where] += 1
        if any(0 <= float(wall) - start < 0.3 for start in starts):
            early[where] += 1
    for title, counts in (("all late samples", every), ("first 0.3 s of slices", early)):
        print(f"{title}: {sum(counts.values())} samples (1 ms each)")
        for where, n in counts.most_common(12):
            print(f"  {n:5d} {where}")


def report(lines: list[str]) -> None:
    """Each lease for waiting requests with its phases; then every lease's figures by kind."""
    kinds: dict[str, list[float]] = {"waited": [], "top-up": []}
    connected: dict[str, int] = {"waited": 0, "top-up": 0}
    for line in lines:
        wall, ms, waited, target, scope, *rest = line.split(maxsplit=5)
        phases = json.loads(rest[0]) if rest else {"calls": []}
        kind = "waited" if waited == "1" else "top-up"
        kinds[kind].append(float(ms))
        connected[kind] += any("connect_start" in call for call in phases["calls"])
        if waited != "1":
            continue
        calls = "; ".join(_call_text(call) for call in phases["calls"])
        print(f"lease for waiting requests at {float(wall):.1f} ({scope}, target {target}): "
              f"{ms} ms, queued {phases.get('queued', '?')} ms, loop lag "
              f"{phases.get('lag', '?')} ms: {calls}")
    for kind, values in kinds.items():
        if values:
            values.sort()
            print(f"{kind}: {len(values)} leases, p50 {values[len(values) // 2]:.1f} ms, "
                  f"max {values[-1]:.1f} ms, {connected[kind]} opened a connection")


if __name__ == "__main__":
    main()
