"""Telemetry cost, in one run on one machine: throughput with telemetry on vs off, and the time
GET /metrics takes once 1,000 distinct clients have been seen.

    .venv/bin/python load/bench_telemetry.py            (or: make bench-telemetry)

1. Throughput: wrk, closed loop, against a fast backend (node simulator, no simulated latency)
   through gateways with telemetry off, on (defaults: spans for ids and traceparent, metrics,
   the JSON request log; no exporter), on without the request log, and on with OTLP export to
   a receiver process (10 % of traces, the default ratio, and all of them). Rounds are
   interleaved (the order rotating) and the median kept. Besides RPS, the CPU time per request
   of the gateway's processes (the local Functions host and its worker)
   (from /proc) is reported: on a shared machine RPS swings with the neighbours' load, while
   CPU per request is what bounds a gateway's throughput and moves much less.
2. /metrics: 1,000 OpenAI requests from 1,000 distinct API keys into a gateway that labels up
   to TELEMETRY_CLIENT_LABELS=1000 of them (the worst case; the default keeps 200), then
   --scrapes sequential GETs of /metrics, timed at the client.
Writes load/results/bench_telemetry.json and prints a Markdown table with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from load.bench_gateway import WRK_LUA, wrk  # noqa: E402
from scripts.procs import HOST_CMD, PYTHON, WORKER_ENV, free_port, spawn  # noqa: E402

CLIENTS = 1000


def start_stack(logs: Path) -> tuple[list, dict]:
    node = ROOT / "services/node"
    port = free_port()
    backend = spawn("fast-backend", ["node", "server.js"], port=port, log_dir=logs, cwd=node,
                    env={"PORT": str(port), "LATENCY_MIN_MS": "0", "LATENCY_MAX_MS": "0",
                         "TTFT_MS": "0", "TOKEN_MS": "0"})
    rport = free_port()
    receiver = spawn("otlp-receiver", [PYTHON, "-m", "tests.support.otlp_receiver", "--port",
                                       str(rport)], port=rport, log_dir=logs)
    base = {"NODE_SERVICE_URL": backend.url, "RATE_LIMIT_ENABLED": "false"}
    variants = {
        "telemetry off": {"TELEMETRY_ENABLED": "false"},
        "telemetry on": {},
        "on, no request log": {"TELEMETRY_REQUEST_LOG": "false"},
        "on + OTLP, 10 % sampled": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
        "on + OTLP, all sampled": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                                   "TELEMETRY_TRACE_SAMPLE_RATIO": "1"},
        "metrics": {"TELEMETRY_CLIENT_LABELS": str(CLIENTS), "CLIENT_ID_SOURCE": "api-key",
                    "TELEMETRY_REQUEST_LOG": "false"},
    }
    gateways = {}
    for name, env in variants.items():
        gport = free_port()
        gateways[name] = spawn("gateway-" + "".join(c if c.isalnum() else "-" for c in name),
                               HOST_CMD, port=gport, log_dir=logs,
                               env={**WORKER_ENV, **base, **env, "PORT": str(gport)})
    return [backend, receiver, *gateways.values()], gateways


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants: the Functions host and its worker (the
    worker runs the app, so the host's own time alone misses what telemetry costs)."""
    ticks = 0
    for one in _tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        for task in Path(f"/proc/{one}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in task.read_text().split())
            except OSError:
                continue
    return found


def measured(proc, url: str, args, script: Path) -> dict:
    before = cpu_seconds(proc.popen.pid)
    run = wrk(url, args.seconds, args.connections, script)
    used = cpu_seconds(proc.popen.pid) - before
    run["cpu_us_per_request"] = used / max(1.0, run["rps"] * args.seconds) * 1e6
    return run


def throughput(gateways: dict, args, script: Path) -> dict[str, dict]:
    targets = [name for name in gateways if name != "metrics"]
    urls = {t: f"{gateways[t].url}/infer/node" for t in targets}
    runs: dict[str, list[dict]] = {t: [] for t in targets}
    for t in targets:
        wrk(urls[t], 2, args.connections, script)  # warm-up
    for n in range(args.rounds):
        # Each round starts one variant later, so none always follows the same neighbour.
        for t in targets[n % len(targets):] + targets[:n % len(targets)]:
            runs[t].append(measured(gateways[t], urls[t], args, script))
    return {t: {**min(r, key=lambda x: abs(x["rps"] - statistics.median(y["rps"] for y in r))),
                "rps_runs": [x["rps"] for x in r],
                "cpu_us": statistics.median(x["cpu_us_per_request"] for x in r)}
            for t, r in runs.items()}


async def scrape_times(base: str, scrapes: int) -> dict:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        async def chat(n: int) -> None:
            body = {"model": "sim-node", "max_tokens": 2,
                    "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(f"{base}/v1/chat/completions", json=body,
                                    headers={"x-api-key": f"bench-client-{n}"}) as response:
                await response.read()

        for start in range(0, CLIENTS, 50):
            await asyncio.gather(*(chat(n) for n in range(start, start + 50)))
        times, size, series = [], 0, 0
        for _ in range(scrapes):
            began = time.perf_counter()
            async with session.get(f"{base}/metrics") as response:
                text = await response.read()
            times.append((time.perf_counter() - began) * 1000)
            size = len(text)
            series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
        clients = {line.split(b'client="')[1].split(b'"')[0] for line in text.splitlines()
                   if line.startswith(b"gateway_tokens_total{")}
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99) - 1],
            "max_ms": times[-1], "bytes": size, "series": series,
            "client_labels": len(clients)}


def report(tp: dict, scrape: dict, args) -> str:
    off, off_cpu = tp["telemetry off"]["rps"], tp["telemetry off"]["cpu_us"]
    lines = [f"Throughput, {args.connections} connections, median of {args.rounds} x "
             f"{args.seconds} s (wrk), POST /infer/node against a zero-latency backend:", "",
             "| gateway | RPS | vs off | CPU us/request | capacity vs off | p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {t} | {r['rps']:.0f} | {r['rps'] / off:.2f}x | {r['cpu_us']:.0f} | "
              f"{off_cpu / r['cpu_us']:.2f}x | {r['p99_ms']:.2f} | {r['errors']} |"
              for t, r in tp.items()]
    lines += ["", f"GET /metrics after {CLIENTS} distinct clients ({scrape['client_labels']} "
              f"client labels, {scrape['series']} series, {scrape['bytes']} bytes), "
              f"{args.scrapes} scrapes: p50 **{scrape['p50_ms']:.1f} ms**, "
              f"p99 {scrape['p99_ms']:.1f} ms, max {scrape['max_ms']:.1f} ms (target < 20 ms)"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--scrapes", type=int, default=100)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing; install it (Debian: apt-get install wrk)")
    logs = Path(tempfile.mkdtemp(prefix="bench-telemetry-"))
    procs, gateways = start_stack(logs)
    try:
        script = logs / "post.lua"
        script.write_text(WRK_LUA)
        tp = throughput(gateways, args, script)
        scrape = asyncio.run(scrape_times(gateways["metrics"].url, args.scrapes))
    finally:
        for proc in procs:
            proc.stop()
    print(report(tp, scrape, args))
    out = ROOT / "load/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_telemetry.json").write_text(json.dumps(
        {"throughput": tp, "metrics_scrape": scrape, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
