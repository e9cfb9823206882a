"""The worker's work per second by source (timers, background tasks, requests), idle or at a
fixed rate: what the gateway does on timers rather than per request, and the event-loop blocks
it causes.

    .venv/bin/python load/profile_timers.py [--seconds 20] [--rates 0,50] [--rounds 2]
        [--mode calls|blocks|cpu] [--base REV] [--limits far|off] [--sync lease|tally]

Starts the instant Node simulator and the gateway (local host + real worker) with
RATE_LIMIT_STORAGE_CONNECTION set to an Azurite of its own (so shared breakers, the
health-check timer every 10 s and, with --limits far, the lease limiter far from binding), and
with --base REV the gateway of that commit beside it (`git archive`, its own Azurite too), the
two measured in alternating windows. Each window is `--seconds` long, idle (rate 0) or under an
open loop at that rate.

--mode calls (the hook load/timer_profile with a cProfile per source): Python calls per second
by source and the top functions, deterministic, and the Azure Table requests made (per minute
idle, per 1,000 requests under load, by source). --mode blocks (the hook, timing only): per
source the task steps per second, their summed time (ms of event loop per second) and the
longest step (an event-loop block every request queued behind it waits out). --mode cpu (no
hook): worker CPU ms per second from /proc, the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, cpu_seconds, host_and_worker, open_loop  # noqa: E402

from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import (  # noqa: E402
    HOST_CMD,
    INSTANT,
    WORKER_ENV,
    export_tree,
    free_port,
    spawn,
    spawn_node,
)

HOOK = str(ROOT / "load/timer_profile")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("calls", "blocks", "cpu"), default="calls")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rates", default="0", help="comma-separated; 0 is idle")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--limits", choices=("far", "off"), default="far",
                        help="far: limits on (lease, never binding); off: RATE_LIMIT_ENABLED="
                        "false, storage still set (breakers and health checks only)")
    parser.add_argument("--sync", choices=("lease", "tally"), default="lease",
                        help="the limiter's mode (RATE_LIMIT_SYNC) with --limits far")
    parser.add_argument("--base", default=None, help="also the gateway of this commit")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--json", default=None, help="write the raw figures here")
    return parser.parse_args()


def start(args: argparse.Namespace, logs: Path, out: Path) -> tuple[list, dict]:
    procs = [spawn_node("backend", logs, INSTANT)]
    backend = procs[0]
    env = {**WORKER_ENV, "NODE_SERVICE_URL": backend.url,
           **({**FAR, "RATE_LIMIT_SYNC": args.sync} if args.limits == "far"
              else {"RATE_LIMIT_ENABLED": "false"})}
    if args.mode != "cpu":
        env.update({"PYTHONPATH": HOOK, "TIMER_PROFILE_OUT": str(out),
                    **({"TIMER_PROFILE_CALLS": "1"} if args.mode == "calls" else {})})
    targets = {}
    trees = {"gateway": None, **({"gateway base": export_tree(args.base, logs)}
                                 if args.base else {})}
    for name, tree in trees.items():
        # An Azurite each: one gateway holding the health-check lease would leave the other
        # without its timer's work, and their limiter rows would be shared.
        azurite = Azurite(logs / f"azurite-{len(targets)}").start()
        procs.append(azurite)
        port = free_port()
        proc = spawn(name.replace(" ", "-"), HOST_CMD, port=port, log_dir=logs, timeout=120,
                     env={**env, "PORT": str(port),
                          "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string},
                     **({"cwd": tree} if tree else {}))
        procs.append(proc)
        targets[name] = proc
    return procs, targets


def window(pid: int, out: Path, url: str, rate: int, seconds: float, hooked: bool) -> dict:
    """One measured window of the worker `pid`: idle or at `rate`."""
    for stale in out.glob(f"{pid}.*"):
        stale.unlink()
    if hooked:
        os.kill(pid, signal.SIGUSR1)
        time.sleep(0.05)
    began, cpu = time.perf_counter(), cpu_seconds(pid)
    requests = 0
    if rate:
        got = asyncio.run(open_loop(url, rate, seconds))
        requests = len(got["latencies"])
        if got["errors"]:
            raise RuntimeError(f"{got['errors']} failed requests to {url}")
    else:
        time.sleep(seconds)
    elapsed, used = time.perf_counter() - began, cpu_seconds(pid) - cpu
    result = {"seconds": elapsed, "cpu_ms_per_s": used * 1000 / elapsed, "requests": requests}
    if hooked:
        os.kill(pid, signal.SIGUSR2)
        report = out / f"{pid}.json"
        for _ in range(300):
            if report.exists():
                break
            time.sleep(0.05)
        found = json.loads(report.read_text())
        result["sources"] = found["sources"]
        result["slowest"] = found["slowest"]
        result["hook_seconds"] = found["seconds"]
        result["calls"] = {}
        for key, file in found["profiles"].items():
            try:
                stats = pstats.Stats(str(out / file))
            except TypeError:  # a profile that saw no call
                continue
            own = own_calls(stats)
            result["calls"][key] = {
                "total": sum(own.values()), "table_ops": table_ops(own),
                "top": sorted(((n, f"{Path(p).name}:{line}({fn})")
                               for (p, line, fn), n in own.items()), reverse=True)[:40]}
    return result


def table_ops(own: dict) -> int:
    """Azure Table requests made: each passes once through the table pipeline's
    StorageHeadersPolicy.on_request (a plain function; whatever made it: the SDK's own
    operations, LazyTable's plain ones). Not the transport's `send`: cProfile counts a
    coroutine once per resumption."""
    return sum(n for (path, line, name), n in own.items()
               if name == "on_request" and path.endswith("azure/data/tables/_policies.py")
               and line < 60)


def own_calls(stats: pstats.Stats) -> dict:
    """Calls per function without the hook's own (its functions, and what they called)."""
    found = {}
    for func, (_cc, calls, _tt, _ct, callers) in stats.stats.items():
        if func[0].endswith("sitecustomize.py"):
            continue
        hooked = sum(c[1] if isinstance(c, tuple) else c
                     for caller, c in callers.items() if caller[0].endswith("sitecustomize.py"))
        if calls - hooked:
            found[func] = calls - hooked
    return found


def main() -> int:
    args = arguments()
    logs = Path(tempfile.mkdtemp(prefix="timers-"))
    out = logs / "prof"
    out.mkdir()
    rates = [int(r) for r in args.rates.split(",")]
    procs, targets = start(args, logs, out)
    runs: dict = {}
    try:
        pids = {name: host_and_worker(proc)[1] for name, proc in targets.items()}
        urls = {name: proc.url + "/infer/node" for name, proc in targets.items()}
        for url in urls.values():
            asyncio.run(open_loop(url, 20, 3))  # warm-up: first storage calls, pools
        time.sleep(2)
        for k in range(args.rounds):
            for rate in rates:
                names = list(targets) if k % 2 == 0 else list(targets)[::-1]
                for name in names:
                    got = window(pids[name], out, urls[name], rate, args.seconds,
                                 args.mode != "cpu")
                    runs.setdefault(name, {}).setdefault(rate, []).append(got)
    finally:
        for proc in reversed(procs):
            proc.stop()
    print(f"# profile_timers: mode {args.mode}, limits {args.limits} ({args.sync}), "
          f"{args.rounds} x "
          f"{args.seconds:.0f} s windows, rates {rates}, load average "
          f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(report(runs, args))
    if args.json:
        Path(args.json).write_text(json.dumps(runs))
    return 0


def _entry() -> dict:
    return {"steps": 0, "seconds": 0.0, "durations": [], "cpu": [], "calls": 0, "ops": 0}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(runs: dict, args: argparse.Namespace) -> str:
    lines = []
    for name, by_rate in runs.items():
        for rate, rounds in by_rate.items():
            cpu = statistics.median(r["cpu_ms_per_s"] for r in rounds)
            lines.append(f"\n## {name}, {'idle' if not rate else f'{rate} requests/s'}: "
                         f"worker CPU {cpu:.1f} ms/s (rounds "
                         f"{', '.join(f'{r['cpu_ms_per_s']:.1f}' for r in rounds)})")
            if args.mode == "cpu":
                continue
            lines.extend(_sources(rounds, rate, args))
    return "\n".join(lines)


def _sources(rounds: list[dict], rate: int, args: argparse.Namespace) -> list[str]:
    """Per source, summed over the rounds: steps, calls and time per second, longest steps."""
    seconds = sum(r["hook_seconds"] for r in rounds)
    table: dict = {}
    for r in rounds:
        for key, s in r["sources"].items():
            entry = table.setdefault(key, _entry())
            entry["steps"] += s["steps"]
            entry["seconds"] += s["seconds"]
            entry["durations"] += s["durations"]
            entry["cpu"] += s.get("cpu", [])
        for key, c in r.get("calls", {}).items():
            table.setdefault(key, _entry())["calls"] += c["total"]
            table[key]["ops"] += c.get("table_ops", 0)
    requests = sum(r["requests"] for r in rounds)
    lines = ["", "| source | steps/s | calls/s | " + ("calls/request | " if rate else "")
             + "step ms/s | p99 step ms | max step ms | step CPU ms/s | p99 step CPU ms | "
             "max step CPU ms |",
             "|---|---:|---:|" + ("---:|" if rate else "") + "---:|---:|---:|---:|---:|---:|"]
    total_calls = sum(e["calls"] for e in table.values())
    for key, e in sorted(table.items(), key=lambda kv: -(kv[1]["calls"] or kv[1]["seconds"])):
        lines.append(f"| {key} | {e['steps'] / seconds:.1f} | {e['calls'] / seconds:.0f} | "
                     + (f"{e['calls'] / requests:.1f} | " if rate else "")
                     + f"{e['seconds'] * 1000 / seconds:.2f} | "
                     f"{_pct(e['durations'], 0.99) * 1000:.2f} | "
                     f"{max(e['durations'], default=0) * 1000:.2f} | "
                     f"{sum(e['cpu']) * 1000 / seconds:.2f} | "
                     f"{_pct(e['cpu'], 0.99) * 1000:.2f} | "
                     f"{max(e['cpu'], default=0) * 1000:.2f} |")
    lines.append(f"| all | | {total_calls / seconds:.0f} | "
                 + (f"{total_calls / requests:.1f} | " if rate else "") + " | | | | | |")
    if args.mode == "calls":
        ops = {k: e["ops"] for k, e in table.items() if e["ops"]}
        total_ops = sum(ops.values())
        per = (f"{total_ops * 1000 / requests:.1f} per 1,000 requests" if rate
               else f"{total_ops * 60 / seconds:.1f} a minute")
        lines.append(f"\nTable requests: {total_ops / seconds:.2f}/s, {per}; "
                     + (f"{total_calls / total_ops:.0f} calls of the whole worker per request"
                        f" made; " if not rate and total_ops else "")
                     + "by source: " + ", ".join(
                         f"{k} {n * 60 / seconds:.1f}/min" for k, n in
                         sorted(ops.items(), key=lambda kv: -kv[1])))
    slow = sorted((s for r in rounds for s in r["slowest"]), key=lambda s: -s[0])[:8]
    lines.append("\nlongest steps (wall, CPU): " + "; ".join(
        f"{s[0] * 1000:.2f} ms {s[3] * 1000 if len(s) > 3 else 0:.2f} ms {s[1]}" for s in slow))
    if args.mode == "calls":
        merged: dict = {}
        for r in rounds:
            for key, c in r["calls"].items():
                for n, fn in c["top"]:
                    merged.setdefault(key, {}).setdefault(fn, 0)
                    merged[key][fn] += n
        for key in sorted(merged, key=lambda k: -table[k]["calls"])[:6]:
            top = sorted(merged[key].items(), key=lambda kv: -kv[1])[:args.top]
            lines.append(f"\n{key}: " + ", ".join(f"{fn} {n / seconds:.0f}/s" for fn, n in top))
    return lines


if __name__ == "__main__":
    sys.exit(main())
