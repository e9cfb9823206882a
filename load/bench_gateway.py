"""Gateway overhead, in one run on one machine: direct backend vs a ten-line proxy function vs
the gateway, both functions served by the local Functions host and the real worker (funchost/).

    .venv/bin/python load/bench_gateway.py            (or: make bench)

1. Throughput: wrk, closed loop at --connections, against a fast backend (node simulator, no
   simulated latency) directly, through load/tenline/main.py (a ten-line proxy FunctionApp: what
   the host and worker cost by themselves), and through the gateway; rounds are interleaved and
   the median kept, since these machines are shared and noisy.
2. Added latency: an open-loop client at --rate RPS against the 30-50 ms simulator: directly,
   through the ten-line function and through the gateway; latency is measured from each
   request's scheduled start, so a stall is not hidden (no coordinated omission).
3. Start-up: from starting the host to the first /healthz 200 through it.
Writes load/results/bench_gateway.json and prints a Markdown table with the ratios.
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
from scripts.procs import HOST_CMD, WORKER_ENV, free_port, spawn  # noqa: E402

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


async def open_loop(url: str, rate: int, seconds: int) -> dict:
    """Send `rate` requests per second on a fixed schedule; latency counts from the schedule."""
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(scheduled: float) -> None:
            nonlocal failures
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                async with session.post(url, data=BODY,
                                        headers={"content-type": "application/json"}) as r:
                    await r.read()
                    failures += r.status != 200
            except aiohttp.ClientError:
                failures += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        start = time.perf_counter() + 0.2
        await asyncio.gather(*(one(start + i / rate) for i in range(rate * seconds)))
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "errors": failures,
            "requests": len(latencies)}


def start_stack(logs: Path) -> tuple[list, dict[str, str], float]:
    fast_port, slow_port, ten_port, slow_ten_port, gw_port = (free_port() for _ in range(5))
    node = ROOT / "services/node"
    fast = spawn("fast-backend", ["node", "server.js"], port=fast_port, log_dir=logs, cwd=node,
                 env={"PORT": str(fast_port), "LATENCY_MIN_MS": "0", "LATENCY_MAX_MS": "0"})
    slow = spawn("slow-backend", ["node", "server.js"], port=slow_port, log_dir=logs, cwd=node,
                 env={"PORT": str(slow_port), "LATENCY_MIN_MS": "30", "LATENCY_MAX_MS": "50"})
    tenline = spawn("tenline", [*HOST_CMD, "--app-dir", str(ROOT / "load/tenline")],
                    port=ten_port, log_dir=logs, ready_path=None,
                    env={**WORKER_ENV, "PORT": str(ten_port), "BACKEND_URL": fast.url})
    slow_tenline = spawn("tenline-slow", [*HOST_CMD, "--app-dir", str(ROOT / "load/tenline")],
                         port=slow_ten_port, log_dir=logs, ready_path=None,
                         env={**WORKER_ENV, "PORT": str(slow_ten_port), "BACKEND_URL": slow.url})
    began = time.perf_counter()
    gateway = spawn("gateway", HOST_CMD, port=gw_port, log_dir=logs,
                    env={**WORKER_ENV, "PORT": str(gw_port), "NODE_SERVICE_URL": fast.url,
                         "PY_SERVICE_URL": slow.url, "RATE_LIMIT_ENABLED": "false"})
    while httpx.get(f"{gateway.url}/healthz", timeout=5).status_code != 200:
        time.sleep(0.01)
    start_s = time.perf_counter() - began
    urls = {"direct": f"{fast.url}/infer", "ten-line function": f"{tenline.url}/infer",
            "gateway": f"{gateway.url}/infer/node", "slow direct": f"{slow.url}/infer",
            "slow ten-line function": f"{slow_tenline.url}/infer",
            "slow gateway": f"{gateway.url}/infer/python"}
    return [fast, slow, tenline, gateway, slow_tenline], urls, start_s


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


def throughput(urls: dict[str, str], args, script: Path, pids: dict) -> dict[str, dict]:
    """wrk rounds; for the functions also CPU milliseconds per request in host and worker, which
    other load on the machine disturbs far less than requests per second."""
    targets = ["direct", "ten-line function", "gateway"]
    runs: dict[str, list[dict]] = {t: [] for t in targets}
    for t in targets:
        wrk(urls[t], 2, args.connections, script)  # warm-up: pools, JIT of the node backend
    for _ in range(args.rounds):
        for t in targets:
            before = [cpu_seconds(p) for p in pids.get(t, ())]
            run = wrk(urls[t], args.seconds, args.connections, script)
            used = [cpu_seconds(p) - b for p, b in zip(pids.get(t, ()), before, strict=True)]
            done = run["rps"] * args.seconds
            if used:
                run["host_cpu_ms"], run["worker_cpu_ms"] = (u * 1000 / done for u in used)
            runs[t].append(run)
    return {t: {**min(r, key=lambda x: abs(x["rps"] - statistics.median(y["rps"] for y in r))),
                "rps_runs": [x["rps"] for x in r]} for t, r in runs.items()}


def _cpu(run: dict) -> float:
    return run.get("host_cpu_ms", 0.0) + run.get("worker_cpu_ms", 0.0)


def report(tp: dict, lat: dict, start_s: float, args) -> str:
    ref, gw = tp["ten-line function"]["rps"], tp["gateway"]["rps"]
    added = lat["gateway"]["p99_ms"] - lat["direct"]["p99_ms"]
    lines = [f"Throughput, {args.connections} connections, median of {args.rounds} x "
             f"{args.seconds} s (wrk):", "",
             "| target | RPS | p50 ms | p99 ms | errors | host CPU ms/req | worker CPU ms/req |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {t} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} "
              f"| {r.get('host_cpu_ms', 0):.3f} | {r.get('worker_cpu_ms', 0):.3f} |"
              for t, r in tp.items()]
    lines += ["", f"gateway / ten-line function = **{gw / ref:.2f}** (target >= 0.7); "
              f"gateway / direct = {gw / tp['direct']['rps']:.2f}", "",
              f"CPU per request (host + worker): ten-line {_cpu(tp['ten-line function']):.3f} ms, "
              f"gateway {_cpu(tp['gateway']):.3f} ms; ten-line / gateway = "
              f"**{_cpu(tp['ten-line function']) / max(_cpu(tp['gateway']), 1e-9):.2f}** "
              "(what the throughput ratio tends to when CPU, not other load, bounds it)", "",
              f"Latency at {args.rate} RPS against the 30-50 ms backend ({args.latency_seconds} s, "
              "open loop):", "", "| target | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|"]
    lines += [f"| {t} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
              for t, r in lat.items()]
    runtime = lat["ten-line function"]["p99_ms"] - lat["direct"]["p99_ms"]
    lines += ["", f"p99 added by the gateway = **{added:.1f} ms** (target <= 3 ms); by the "
              f"ten-line function through the same host and worker = {runtime:.1f} ms", "",
              f"start to first /healthz 200 = **{start_s:.2f} s** (host, worker, indexing)"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--latency-seconds", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing; install it (Debian: apt-get install wrk)")
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    procs, urls, start_s = start_stack(logs)
    try:
        script = logs / "post.lua"
        script.write_text(WRK_LUA)
        pids = {"ten-line function": host_and_worker(procs[2]),
                "gateway": host_and_worker(procs[3])}
        tp = throughput(urls, args, script, pids)
        lat = {name: asyncio.run(open_loop(urls[key], args.rate, args.latency_seconds))
               for name, key in (("direct", "slow direct"),
                                 ("ten-line function", "slow ten-line function"),
                                 ("gateway", "slow gateway"))}
    finally:
        for proc in procs:
            proc.stop()
    text = report(tp, lat, start_s, args)
    print(text)
    out = ROOT / "load/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gateway.json").write_text(json.dumps(
        {"throughput": tp, "latency": lat, "start_s": start_s, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
