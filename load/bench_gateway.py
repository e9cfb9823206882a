"""Gateway overhead, in one run on one machine: direct backend vs a ten-line proxy function vs
the gateway (defaults: limits on far from binding on Azurite, cache on, telemetry on; and limits
off), every function served by the local Functions host and the real worker (funchost/).

    .venv/bin/python load/bench_gateway.py            (or: make bench)

1. Throughput: wrk, closed loop at --connections, against a fast backend (node simulator, no
   simulated latency) directly, through load/tenline/main.py (a ten-line proxy FunctionApp: what
   the host and worker cost by themselves), and through the gateways (and a tally-mode gateway,
   for its storage counters); rounds interleaved (order reversed every other round), the median
   kept; CPU per request of host + worker from /proc; Table Storage round trips per request
   from the limiter's own counters (/_gateway/stats).
2. Added latency: an open-loop client at --rate RPS against the 30-50 ms simulator, in short
   slices that take turns between targets; latency is measured from each request's scheduled
   start, so a stall is not hidden (no coordinated omission); the client's own lateness and
   the slices that could not keep the rate (saturated) are reported beside it.
3. Start-up: from starting the host to the first /healthz 200 through it.
Writes load/results/bench.json (--out) and prints Markdown tables with the ratios.

--only-latency runs phase 2 alone (no wrk, no tally-mode gateway); --base REV adds that
commit's tree (git archive) as two more gateways, defaults and limits off, to phase 2's turns:
before and after in one run, on the same machine at the same moments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import HOST_CMD, WORKER_ENV, export_tree, free_port, spawn  # noqa: E402

BODY = b'{"prompt": "benchmark"}'
WRK_LUA = 'wrk.method = "POST"\nwrk.body = \'{"prompt": "benchmark"}\'\n' \
          'wrk.headers["Content-Type"] = "application/json"\n'
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int, connections: int, script: Path) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True,
                         check=True).stdout
    latency = {p: float(v) * UNITS[u] for p, v, u in
               re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": latency["50"], "p99_ms": latency["99"],
            "errors": int(non_2xx.group(1) if non_2xx else 0)
            + (sum(map(int, errors.groups())) if errors else 0)}


async def open_loop(url: str, rate: int, seconds: float) -> dict:
    """Send `rate` requests per second on a fixed schedule; latency counts from the schedule.

    Each request is started by one dispatcher at its time (not thousands of tasks made up front,
    whose first steps alone delayed the first requests on a loaded machine), and how late the
    dispatcher started it is kept apart (`lag_ms`): lateness of this client, not of the target,
    though it is inside every latency too (no coordinated omission)."""
    latencies: list[float] = []
    lags: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(scheduled: float) -> None:
            nonlocal failures
            try:
                async with session.post(url, data=BODY,
                                        headers={"content-type": "application/json"}) as r:
                    await r.read()
                    failures += r.status != 200
            except aiohttp.ClientError:
                failures += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(int(rate * seconds)):
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            lags.append((time.perf_counter() - scheduled) * 1000)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return {"latencies": latencies, "lags": lags, "errors": failures,
            "achieved_rps": len(latencies) / wall}


def pick(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


FAR = {"GLOBAL_RPS": "1000000", "GLOBAL_BURST": "1000000", "CLIENT_RPS": "1000000",
       "CLIENT_BURST": "1000000"}  # limits on, checked on every request, never binding
GATEWAYS = ("gateway (defaults)", "gateway (limits off)")
TALLY = "gateway (tally mode)"  # limits on, RATE_LIMIT_SYNC=tally: its storage operations
TARGETS = ("direct", "ten-line function", *GATEWAYS)
WRK_TARGETS = (*TARGETS, TALLY)
# --also-upstream KIND: one more wrk target, limits off with UPSTREAM_CLIENT=KIND (an A/B of the
# upstream adapter in the same run); filled in by main.
EXTRA: dict[str, dict[str, str]] = {}
# --lease-log: the defaults gateways' workers time every lease, in phases, into the logs folder
# (load/worker_leasetime/sitecustomize.py, read by load/probe_worker_leases.py's report).
LEASE_LOG = False
# --base REV: the two gateways again from that commit's tree, latency phase only.
BASE = tuple(f"{g[:-1]}, base)" for g in GATEWAYS)


def start_stack(logs: Path, tally: bool = True, base: Path | None = None
                ) -> tuple[dict, dict[str, str], dict[str, str], float]:
    """Backends, the ten-line function and two gateways (defaults: limits on far from binding on
    Azurite, cache on, telemetry on; and limits off), each function on its own host + worker;
    the tally-mode gateway unless not `tally`, and the two gateways from the `base` tree too.
    Returns the processes by name, the fast and the slow URL of each target, and the start-up
    time."""
    node = ROOT / "services/node"
    azurite = Azurite(logs / "azurite").start()
    fast_port, slow_port = free_port(), free_port()
    fast = spawn("fast-backend", ["node", "server.js"], port=fast_port, log_dir=logs, cwd=node,
                 env={"PORT": str(fast_port), "LATENCY_MIN_MS": "0", "LATENCY_MAX_MS": "0"})
    slow = spawn("slow-backend", ["node", "server.js"], port=slow_port, log_dir=logs, cwd=node,
                 env={"PORT": str(slow_port), "LATENCY_MIN_MS": "30", "LATENCY_MAX_MS": "50"})
    procs = {"azurite": azurite, "fast": fast, "slow": slow}
    for name, backend in (("ten-line function", fast), ("ten-line slow", slow)):
        port = free_port()
        procs[name] = spawn(name.replace(" ", "-"), [*HOST_CMD, "--app-dir",
                            str(ROOT / "load/tenline")], port=port, log_dir=logs,
                            ready_path=None, env={**WORKER_ENV, "PORT": str(port),
                                                  "BACKEND_URL": backend.url})
    common = {**WORKER_ENV, "NODE_SERVICE_URL": fast.url, "PY_SERVICE_URL": slow.url}
    table = {**FAR, "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string}
    envs = {GATEWAYS[0]: table, GATEWAYS[1]: {"RATE_LIMIT_ENABLED": "false"},
            **({TALLY: {**table, "RATE_LIMIT_SYNC": "tally"}} if tally else {}), **EXTRA}
    if base is not None:
        envs.update({BASE[0]: envs[GATEWAYS[0]], BASE[1]: envs[GATEWAYS[1]]})
    for name in (GATEWAYS[0], BASE[0]) if LEASE_LOG else ():
        if name in envs:  # the lease timer (load/probe_worker_leases.py) in that worker
            file = "leases-base.txt" if name in BASE else "leases.txt"
            envs[name] = {**envs[name], "PYTHONPATH": str(ROOT / "load/worker_leasetime"),
                          "WORKER_LEASE_LOG": str(logs / file)}
    start_s = 0.0
    for name, extra in envs.items():
        port = free_port()
        began = time.perf_counter()
        tree = ["--app-dir", str(base)] if name in BASE else []
        procs[name] = spawn(name.split()[0] + "-" + extra.get("RATE_LIMIT_ENABLED", "on")
                            + "-" + extra.get("RATE_LIMIT_SYNC", "lease")
                            + "-" + extra.get("UPSTREAM_CLIENT", "default")
                            + ("-base" if tree else ""),
                            [*HOST_CMD, *tree], port=port, log_dir=logs, timeout=120,
                            env={**common, **extra, "PORT": str(port)})
        while httpx.get(f"{procs[name].url}/healthz", timeout=10).status_code != 200:
            time.sleep(0.01)
        start_s = start_s or time.perf_counter() - began
    fast_urls = {"direct": f"{fast.url}/infer",
                 "ten-line function": f"{procs['ten-line function'].url}/infer",
                 **{g: f"{procs[g].url}/infer/node" for g in envs}}
    slow_urls = {"direct": f"{slow.url}/infer",
                 "ten-line function": f"{procs['ten-line slow'].url}/infer",
                 **{g: f"{procs[g].url}/infer/python" for g in (*GATEWAYS, *BASE) if g in envs}}
    return procs, fast_urls, slow_urls, start_s


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_and_worker(proc) -> tuple[int, int]:
    """The host's pid and its worker's (the child running funchost.worker)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == proc.popen.pid and b"funchost.worker" in \
                        (entry / "cmdline").read_bytes():
                    return proc.popen.pid, int(entry.name)
            except (OSError, ValueError):
                continue
    raise RuntimeError(f"no worker under {proc.name}")


def stats_of(url: str) -> dict:
    """The gateway's own counters (/_gateway/stats): limiter, cache, tokens."""
    return httpx.get(url.rsplit("/infer", 1)[0] + "/_gateway/stats", timeout=10).json()


def storage_per_request(before: dict, after: dict, requests: float) -> dict:
    """Table Storage operations per request from the limiter's counters over a round."""
    lim0, lim1 = before.get("limiter", {}), after.get("limiter", {})
    return {k: (lim1.get(k, 0) - lim0.get(k, 0)) / max(requests, 1.0)
            for k in ("storage_round_trips", "storage_reads", "storage_writes") if k in lim1}


def throughput(urls: dict[str, str], args, script: Path, pids: dict) -> dict[str, dict]:
    """wrk rounds, interleaved; for the functions also CPU milliseconds per request in host and
    worker (/proc), which other load on the machine disturbs far less than requests per second,
    and for the gateway with limits its storage operations per request (its own counters)."""
    targets = (*WRK_TARGETS, *EXTRA)
    runs: dict[str, list[dict]] = {t: [] for t in targets}
    for t in targets:
        wrk(urls[t], 2, args.connections, script)  # warm-up: pools, JIT of the node backend
    for k in range(args.rounds):
        for t in (targets if k % 2 == 0 else targets[::-1]):
            before = [cpu_seconds(p) for p in pids.get(t, ())]
            counted = stats_of(urls[t]) if t in (GATEWAYS[0], TALLY) else None
            run = wrk(urls[t], args.seconds, args.connections, script)
            used = [cpu_seconds(p) - b for p, b in zip(pids.get(t, ()), before, strict=True)]
            done = run["rps"] * args.seconds
            if used:
                run["host_cpu_ms"], run["worker_cpu_ms"] = (u * 1000 / done for u in used)
            if counted is not None:
                run["limiter_storage_per_request"] = storage_per_request(
                    counted, stats_of(urls[t]), done)
            runs[t].append(run)
    return {t: {**min(r, key=lambda x: abs(x["rps"] - statistics.median(y["rps"] for y in r))),
                "rps_runs": [x["rps"] for x in r],
                "cpu_runs": [_cpu(x) for x in r]} for t, r in runs.items()}


def turns(targets: tuple[str, ...], k: int, order: str) -> tuple[str, ...]:
    """Pass k's order: "reverse" (every other pass reversed, so the last target of a pass runs
    again first in the next, two slices without a pause) or "same" (every pass in the same
    order, so each target rests the same len(targets) - 1 slices before each of its own: a
    target whose state cools in a pause, the limiter's pools, is not measured after more
    pauses than another)."""
    return targets if order == "same" or k % 2 == 0 else targets[::-1]


def latency(urls: dict[str, str], args, targets: tuple[str, ...] = TARGETS) -> dict[str, dict]:
    """Open loop at --rate for --latency-rounds x --latency-seconds per target, in slices of
    --latency-slice seconds that take turns (order reversed every other pass): a neighbour's
    burst on this shared machine then lands on every target alike, instead of on the one whose
    10 s round it hit, which made "p99 added" compare different moments. A slice whose
    requests could not all complete within it (achieved rate below 0.9 x --rate) saturated the
    stack or this client: counted in `saturated_slices`."""
    samples: dict[str, list[float]] = {t: [] for t in targets}
    lags: dict[str, list[float]] = {t: [] for t in targets}
    errors = dict.fromkeys(targets, 0)
    saturated = dict.fromkeys(targets, 0)
    slices = max(1, round(args.latency_rounds * args.latency_seconds / args.latency_slice))
    limited = [t for t in targets if t in (GATEWAYS[0], BASE[0])]
    before = {t: stats_of(urls[t]).get("limiter", {}) for t in limited}
    for k in range(slices):
        for t in turns(targets, k, args.latency_order):
            got = asyncio.run(open_loop(urls[t], args.rate, args.latency_slice))
            samples[t] += got["latencies"]
            lags[t] += got["lags"]
            errors[t] += got["errors"]
            saturated[t] += got["achieved_rps"] < 0.9 * args.rate
    figures = {t: {"p50_ms": pick(v, 0.5), "p99_ms": pick(v, 0.99), "errors": errors[t],
                   "requests": len(v), "client_lag_p99_ms": pick(lags[t], 0.99),
                   "slices": slices, "saturated_slices": saturated[t]}
               for t, v in samples.items()}
    for t in limited:  # what the limiter did, from its own counters (not timings)
        after = stats_of(urls[t]).get("limiter", {})
        d = {k: after.get(k, 0) - before[t].get(k, 0) for k in after if k != "storage_healthy"}
        per = 4000 / max(len(samples[t]), 1)
        figures[t]["limiter_per_4000"] = {
            "decided_off_the_fast_path": per * (d["decisions"] - d.get("fast_admitted", 0)),
            **{k: per * d[k] for k in ("leases", "background_refills", "returns",
                                       "lease_waits", "storage_round_trips", "storage_errors",
                                       "storage_timeouts", "decisions_without_storage")
               if k in d}}
    return figures


def _cpu(run: dict) -> float:
    return run.get("host_cpu_ms", 0.0) + run.get("worker_cpu_ms", 0.0)


def verdicts(tp: dict, lat: dict) -> dict[str, dict]:
    """Per gateway: the ratios to the ten-line function and the latency added over it."""
    ref, added = tp["ten-line function"], latency_verdicts(lat)
    return {g: {"rps_ratio": tp[g]["rps"] / ref["rps"],
                "cpu_ratio": _cpu(tp[g]) / max(_cpu(ref), 1e-9), **added[g]}
            for g in GATEWAYS}


def latency_verdicts(lat: dict) -> dict[str, dict]:
    """Per gateway (and base gateway): p50/p99 added over the direct backend and over the
    ten-line function, from the open-loop phase alone."""
    ref, direct = lat["ten-line function"], lat["direct"]
    return {g: {"p50_added_ms": v["p50_ms"] - direct["p50_ms"],
                "p99_added_ms": v["p99_ms"] - direct["p99_ms"],
                "p99_added_over_tenline_ms": v["p99_ms"] - ref["p99_ms"]}
            for g, v in lat.items() if g.startswith("gateway")}


def open_loop_rows(lat: dict) -> list[str]:
    """The open-loop phase's table, a row per target (both reports print it)."""
    return ["| target | p50 ms | p99 ms | errors | this client's lag p99 ms | "
            "saturated slices |", "|---|---:|---:|---:|---:|---:|"] + [
        f"| {t} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
        f"{r['client_lag_p99_ms']:.1f} | {r['saturated_slices']} of {r['slices']} |"
        for t, r in lat.items()]


def latency_report(lat: dict, args) -> str:
    """--only-latency's tables: each target's open-loop figures and the gateways' added."""
    lines = [f"Open loop at {args.rate} RPS against the 30-50 ms backend, "
             f"{args.latency_rounds} x {args.latency_seconds} s per target in "
             f"{args.latency_slice} s slices taking turns, load average "
             f"{os.getloadavg()[0]:.1f}:", "", *open_loop_rows(lat)]
    lines += [f"limiter per 4,000 requests ({t}): " + ", ".join(
        f"{k} {v:.1f}" for k, v in r["limiter_per_4000"].items())
        for t, r in lat.items() if "limiter_per_4000" in r]
    lines += ["", "| gateway | p50 added ms | p99 added ms (<= 3) | p99 over ten-line ms |",
              "|---|---:|---:|---:|"]
    lines += [f"| {g} | {v['p50_added_ms']:.1f} | **{v['p99_added_ms']:.1f}** | "
              f"{v['p99_added_over_tenline_ms']:.1f} |" for g, v in latency_verdicts(lat).items()]
    return "\n".join(lines)


def report(tp: dict, lat: dict, start_s: float, args) -> str:
    lines = [f"Throughput, {args.connections} connections, median of {args.rounds} x "
             f"{args.seconds} s (wrk, rounds interleaved), load average "
             f"{os.getloadavg()[0]:.1f}:", "",
             "| target | RPS (rounds) | p50 ms | p99 ms | errors | host CPU ms/req | "
             "worker CPU ms/req |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {t} | {r['rps']:.0f} ({', '.join(f'{x:.0f}' for x in r['rps_runs'])}) | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
              f"{r.get('host_cpu_ms', 0):.3f} | {r.get('worker_cpu_ms', 0):.3f} |"
              for t, r in tp.items()]
    lines += ["", f"Open loop at {args.rate} RPS against the 30-50 ms backend, "
              f"{args.latency_rounds} x {args.latency_seconds} s per target in "
              f"{args.latency_slice} s slices taking turns:", "", *open_loop_rows(lat)]
    lines += ["", "| gateway | RPS / ten-line (>= 0.9) | CPU/req / ten-line (<= 1.15) | "
              "p50 added ms | p99 added ms (<= 3) | p99 over ten-line ms |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {g} | **{v['rps_ratio']:.2f}** | **{v['cpu_ratio']:.2f}** | "
              f"{v['p50_added_ms']:.1f} | **{v['p99_added_ms']:.1f}** | "
              f"{v['p99_added_over_tenline_ms']:.1f} |" for g, v in verdicts(tp, lat).items()]
    lines += ["", "limiter storage operations per request (its counters): lease (defaults) "
              f"{tp[GATEWAYS[0]].get('limiter_storage_per_request')}, tally "
              f"{tp[TALLY].get('limiter_storage_per_request')}",
              f"start to first /healthz 200 (defaults) = **{start_s:.2f} s**"]
    off = tp[GATEWAYS[1]]
    lines += [f"{GATEWAYS[1]} / {name}: **{off['rps'] / tp[name]['rps']:.2f}x** by RPS, "
              f"**{_cpu(off) / max(_cpu(tp[name]), 1e-9):.2f}x** by CPU per request"
              for name in EXTRA]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--latency-seconds", type=int, default=10)
    parser.add_argument("--latency-rounds", type=int, default=2)
    parser.add_argument("--latency-slice", type=float, default=2.0,
                        help="seconds of open loop per target before the next takes its turn")
    parser.add_argument("--out", default=str(ROOT / "load/results/bench.json"))
    parser.add_argument("--latency-order", choices=("reverse", "same"), default="reverse",
                        help="turns of the latency slices (see `turns`)")
    parser.add_argument("--only-latency", action="store_true",
                        help="phase 2 alone: the open loop at --rate, no wrk rounds")
    parser.add_argument("--lease-log", action="store_true",
                        help="time every lease in the defaults gateways' workers (a probe)")
    parser.add_argument("--base", metavar="REV",
                        help="also that commit's gateways (defaults, limits off) in phase 2")
    parser.add_argument("--also-upstream", choices=("aiohttp-direct", "httpx"),
                        help="one more target: limits off with this UPSTREAM_CLIENT")
    args = parser.parse_args()
    global LEASE_LOG
    LEASE_LOG = args.lease_log
    if args.also_upstream:
        EXTRA[f"gateway (limits off, {args.also_upstream})"] = {
            "RATE_LIMIT_ENABLED": "false", "UPSTREAM_CLIENT": args.also_upstream}
    if shutil.which("wrk") is None and not args.only_latency:
        sys.exit("bench: wrk is missing; install it (Debian: apt-get install wrk)")
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    load_before = os.getloadavg()
    base = export_tree(args.base, logs) if args.base else None
    procs, fast, slow, start_s = start_stack(logs, tally=not args.only_latency, base=base)
    try:
        if args.only_latency:
            tp = None
            for t in (*TARGETS, *(BASE if base else ())):  # wrk's rounds warm them otherwise
                asyncio.run(open_loop(slow[t], args.rate, 1.0))
            lat = latency(slow, args, (*TARGETS, *(BASE if base else ())))
        else:
            script = logs / "post.lua"
            script.write_text(WRK_LUA)
            pids = {t: host_and_worker(procs[t])
                    for t in ("ten-line function", *GATEWAYS, TALLY, *EXTRA)}
            tp = throughput(fast, args, script, pids)
            lat = latency(slow, args, (*TARGETS, *(BASE if base else ())))
        cache = stats_of(fast[GATEWAYS[0]]).get("cache")
    finally:
        for proc in procs.values():
            proc.stop()
    print(report(tp, lat, start_s, args) if tp is not None else latency_report(lat, args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(
        {"throughput": tp, "latency": lat,
         "verdicts": verdicts(tp, lat) if tp is not None else latency_verdicts(lat),
         "start_s": start_s, "cache": cache,
         "load_average": {"before": load_before, "after": os.getloadavg()},
         "args": vars(args), "logs": str(logs)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
