"""Rate limiting's cost and accuracy, in one run: the same gateway with limits off and on.

    .venv/bin/python load/bench_ratelimit.py          (or: make bench-ratelimit)

Azurite is the store. wrk drives each gateway closed-loop well above the global limit; rounds are
interleaved and each round's figures kept. Reported per round with limits on:
- storage round trips per admitted request, from the gateway's own counters (/_gateway/stats);
- throughput (answers per second, 200 and 429 alike) against the same gateway with limits off;
- admitted requests against the configured allowance, burst + rate x T, and the stated bound.
Writes load/results/bench_ratelimit.json and prints a Markdown table.

With --instances N (> 1) it measures instead N gateway processes sharing one Azurite and one
global limit, driven round-robin by a Python client (wrk drives one URL): round trips per
admitted request across all instances, and admitted against the allowance and the stated bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "load")]
from bench_gateway import WRK_LUA, wrk  # noqa: E402

from function_app.ratelimit.limits import Limit  # noqa: E402
from scripts.procs import HOST_CMD, INSTANT, WORKER_ENV, free_port, spawn, spawn_node  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402
from tests.support.bounds import lease_overshoot_bound, tally_admitted_bound  # noqa: E402
from tests.support.drive import drive  # noqa: E402

DETAIL = ("storage_reads", "storage_writes", "conflicts", "leases", "returns", "lease_waits",
          "contention_denied", "tally_syncs", "tally_waits", "tally_aggregations",
          "decisions_without_storage")


def mode_env(args) -> dict[str, str]:
    """The limiter settings every limited gateway of a run gets (RATE_LIMIT_SYNC and its own)."""
    return {"RATE_LIMIT_SYNC": args.sync, "RATE_LIMIT_TALLY_PERIOD_S": str(args.period),
            "RATE_LIMIT_LEASE_S": str(args.lease_s),
            "RATE_LIMIT_EXPECTED_INSTANCES": str(max(1, args.instances))}


def bound_of(args, seconds: float) -> float:
    """The stated bound for the run's mode: admitted <= this on one key in `seconds`."""
    limit = Limit(args.rate, args.burst)
    if args.sync == "tally":
        n = max(1, args.instances)
        return tally_admitted_bound(limit, n, 1, args.period, seconds, n, n)
    return (args.burst + args.rate * seconds
            + lease_overshoot_bound(limit, args.lease_s, max(1, args.instances), 1))


def counters(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/_gateway/stats", timeout=5).json()["limiter"]


def start(logs: Path, args) -> tuple[list, dict[str, str]]:
    azurite = Azurite(logs / "azurite").start()
    off_port, on_port, loose_port = (free_port() for _ in range(3))
    backend = spawn_node("backend", logs, INSTANT)
    common = {**WORKER_ENV, "NODE_SERVICE_URL": backend.url, "CLIENT_RPS": "0"}
    off = spawn("gateway-off", HOST_CMD, port=off_port,
                log_dir=logs, env={**common, "PORT": str(off_port), "RATE_LIMIT_ENABLED": "false"})
    on = spawn("gateway-on", HOST_CMD, port=on_port, log_dir=logs,
               env={**common, **mode_env(args), "PORT": str(on_port),
                    "GLOBAL_RPS": str(args.rate), "GLOBAL_BURST": str(args.burst),
                    "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string})
    # Limits on but never binding: what checking a limit costs when every request is admitted.
    loose = spawn("gateway-loose", HOST_CMD, port=loose_port,
                  log_dir=logs, env={**common, **mode_env(args), "PORT": str(loose_port),
                                     "GLOBAL_RPS": "1000000",
                                     "GLOBAL_BURST": "1000000",
                                     "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string})
    return [off, on, loose, backend, azurite], {"off": off.url, "on": on.url, "loose": loose.url}


def limited_round(url: str, args, script: Path) -> dict:
    before = counters(url)
    time.sleep(args.burst / args.rate + 0.5)  # let the bucket refill so each round starts full
    result = wrk(f"{url}/infer/node", args.seconds, args.connections, script)
    after = counters(url)
    admitted = after["admitted"] - before["admitted"]
    trips = after["storage_round_trips"] - before["storage_round_trips"]
    allowance = args.burst + args.rate * args.seconds
    bound = bound_of(args, args.seconds)
    return {"answers_per_s": result["rps"], "admitted": admitted, "allowance": allowance,
            "bound": bound, "admitted_vs_allowance": admitted / allowance,
            "round_trips": trips, "round_trips_per_admitted": trips / max(1, admitted),
            "p99_ms": result["p99_ms"]}


def report(rows: list[dict], off: list[dict], loose: list[dict], args) -> str:
    lines = [f"Global limit {args.rate:.0f}/s, burst {args.burst:.0f}; wrk {args.connections} "
             f"connections x {args.seconds} s per round; Azurite store; one gateway instance; "
             f"RATE_LIMIT_SYNC={args.sync}.", "",
             "| round | limits off RPS | limits on RPS | on/off | admitted | allowance | "
             "admitted/allowance | bound | storage round trips / admitted |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, (row, base) in enumerate(zip(rows, off, strict=True), 1):
        lines.append(
            f"| {i} | {base['rps']:.0f} | {row['answers_per_s']:.0f} | "
            f"{row['answers_per_s'] / base['rps']:.2f} | {row['admitted']} | "
            f"{row['allowance']:.0f} | {row['admitted_vs_allowance']:.3f} | {row['bound']:.0f} | "
            f"{row['round_trips_per_admitted']:.4f} |")
    lines += ["", "Limits on but never binding (every request admitted and proxied), same rounds:",
              "", "| round | limits off RPS | limits on, not binding RPS | ratio | "
              "round trips / admitted |", "|---|---:|---:|---:|---:|"]
    for i, (row, base) in enumerate(zip(loose, off, strict=True), 1):
        lines.append(f"| {i} | {base['rps']:.0f} | {row['answers_per_s']:.0f} | "
                     f"{row['answers_per_s'] / base['rps']:.2f} | "
                     f"{row['round_trips_per_admitted']:.4f} |")
    lines += ["", "Targets: round trips / admitted <= 0.05; on/off >= 0.8; "
              "0.95 <= admitted/allowance and admitted <= bound."]
    return "\n".join(lines)


def shared(args, logs: Path) -> str:
    """N instances on one key: storage round trips per admitted request, and the accuracy."""
    azurite = Azurite(logs / "azurite").start()
    backend = spawn_node("backend", logs, INSTANT)
    gateways = []
    try:
        for i in range(args.instances):
            gw_port = free_port()
            gateways.append(spawn(f"gateway-{i}", HOST_CMD,
                                  port=gw_port, log_dir=logs, env={**WORKER_ENV,
                "PORT": str(gw_port), "NODE_SERVICE_URL": backend.url, "CLIENT_RPS": "0",
                "GLOBAL_RPS": str(args.rate), "GLOBAL_BURST": str(args.burst), **mode_env(args),
                "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string}))
        run = asyncio.run(drive([f"{g.url}/infer/node" for g in gateways], args.seconds, 24))
        totals = [counters(g.url) for g in gateways]
    finally:
        for proc in [*gateways, backend, azurite]:
            proc.stop()
    admitted = run.admitted
    trips = sum(c["storage_round_trips"] for c in totals)
    allowance = args.burst + args.rate * run.elapsed
    bound = bound_of(args, run.elapsed)
    detail = {name: sum(c[name] for c in totals) for name in DETAIL}
    knob = (f"RATE_LIMIT_TALLY_PERIOD_S={args.period}" if args.sync == "tally"
            else f"RATE_LIMIT_LEASE_S={args.lease_s}")
    return (f"{args.instances} instances, global limit {args.rate:.0f}/s burst {args.burst:.0f}, "
            f"RATE_LIMIT_SYNC={args.sync}, {knob}, {run.elapsed:.1f} s, answers "
            f"{dict(run.statuses)}\n\nadmitted {admitted} of allowance {allowance:.0f} "
            f"({admitted / allowance:.3f}), bound {bound:.0f}; storage round trips {trips} "
            f"= {trips / max(1, admitted):.3f} per admitted request\n\n{detail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--burst", type=float, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--lease-s", type=float, default=0.25, help="RATE_LIMIT_LEASE_S")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--sync", choices=("lease", "tally"), default="lease",
                        help="RATE_LIMIT_SYNC of every limited gateway")
    parser.add_argument("--period", type=float, default=3.0, help="RATE_LIMIT_TALLY_PERIOD_S")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-rl-"))
    if args.instances > 1:
        print(shared(args, logs))
        return 0
    procs, urls = start(logs, args)
    script = logs / "post.lua"
    script.write_text(WRK_LUA)
    try:
        wrk(f"{urls['off']}/infer/node", 2, args.connections, script)  # warm-up
        off, on, loose = [], [], []
        for _ in range(args.rounds):
            off.append(wrk(f"{urls['off']}/infer/node", args.seconds, args.connections, script))
            on.append(limited_round(urls["on"], args, script))
            loose.append(limited_round(urls["loose"], args, script))
    finally:
        for proc in procs:
            proc.stop()
    print(report(on, off, loose, args))
    out = ROOT / "load/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_ratelimit.json").write_text(json.dumps(
        {"limits_on": on, "limits_off": off, "limits_not_binding": loose, "args": vars(args)},
        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
