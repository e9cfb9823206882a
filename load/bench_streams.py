"""How many streamed chat completions one instance (one local Functions host + the real worker)
holds within 10 ms added latency, and what each costs in memory and CPU.

    .venv/bin/python load/bench_streams.py [--levels 100,250,500,1000,1500]   (make bench-streams)

For each N in --levels: N streams straight to the backend, then N through the gateway (an
OpenAI route to the same backend; token and request limits on with an in-memory store, far from
binding; cache and telemetry on), each phase alone on the machine. The backend (load/stream_sim.py,
or the Node simulator with --sim node) sends a chunk every --chunk-ms (100 ms) for --stream-s
(20 s). The streams are opened evenly over --ramp-s (default: 100 a second, 5-15 s) by --clients
client processes (load/stream_client.py: raw protocols on uvloop, or aiohttp with --client
aiohttp). Per phase: time to first token (TTFT, from sending the request to the first data
event) and the gap between successive chunks, p50/p99; added = gateway minus direct at the same
percentile; TTFT p99 by the second of the ramp a stream opened in. The harness shares the
machine's cores with what it measures, so every phase reports what it spent: the clients' CPU
and event-loop lag, the backend's CPU, and the machine's TCP listen-drop counters. During the
gateway phase the host's and the worker's RSS (peak, from /proc) and CPU (total and busiest
second) are read; memory per stream = (peak RSS of both - their RSS before any level) / N.
With --base COMMIT a second host + worker runs that commit's tree (git archive) and each level
goes through both, in alternating order, after the same direct phase: a before/after in one run
on a machine whose load moves. With --reference tenline, the same again with a bare streaming
proxy function (load/tenline_stream) on its own host + worker, rows marked `tenline`: the
platform's own floor beside the gateway, with the gateway's p99s added and CPU per chunk over
the bare function's (load/streams_reference.py). Writes load/results/bench_streams.json and
prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, cpu_seconds, host_and_worker, pick  # noqa: E402
from machine import rss_kb, tcp_counters  # noqa: E402
from stream_client import run_streams  # noqa: E402
from streams_reference import (  # noqa: E402
    REFERENCE,
    comparison_table,
    mark,
    over_reference,
    within_target,
)

from scripts.procs import (  # noqa: E402
    HOST_CMD,
    PYTHON,
    WORKER_ENV,
    export_tree,
    free_port,
    spawn,
    spawn_node,
)

MODEL = "sim-stream"
TARGET_ADDED_MS = 10.0


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client(url: str, body: dict, count: int, ramp_s: float, offset: float, kind: str,
           out) -> None:
    """A client process: `count` streams, the k-th opened at offset + k * ramp_s / count
    (load/stream_client.py; `raw` on uvloop)."""
    raise_fd_limit()
    delays = [offset + k * ramp_s / max(count, 1) for k in range(count)]
    runner = uvloop.run if kind == "raw" else asyncio.run
    done = runner(run_streams(kind, url, body, delays))
    results = done["results"]
    ttfts = [r["ttft"] for r in results if r["ok"] and r["ttft"] is not None]
    gaps = [g for r in results if r["ok"] for g in r["gaps"]]
    opened = [(d, r["ttft"]) for d, r in zip(delays, results, strict=True)
              if r["ok"] and r["ttft"] is not None]
    out.put({"ttfts": ttfts, "gaps": gaps, "errors": sum(not r["ok"] for r in results),
             "opened": opened,
             "cpu_s": done["cpu_s"], "lags": done["lags"]})


def chunks_of(args) -> int:
    """Chunks (tokens) per stream: one every --chunk-ms for --stream-s."""
    return int(args.stream_s * 1000 / args.chunk_ms)


def ramp_of(n: int, args) -> float:
    """--ramp-s, or by default 100 new streams a second (5 s at least, 15 s at most, so that
    every stream of 20 s is open together at the end of the ramp)."""
    return args.ramp_s or min(15.0, max(5.0, n / 100))


def phase(url: str, n: int, args, watch: tuple[int, int] | None, idle: dict | None = None,
          sim: int | None = None) -> dict:
    """N streams from --clients processes; with `watch` (host pid, worker pid), their peak RSS
    and CPU over the phase; memory per stream counts from `idle` (RSS before any level). Always
    the clients' own CPU and loop lag, and with `sim` (its pid) the simulator's CPU: what the
    rest of the machine spent beside the gateway."""
    body = {"model": MODEL, "stream": True, "max_tokens": chunks_of(args),
            "messages": [{"role": "user", "content": "Hold the line."}]}
    out = multiprocessing.Queue()
    ramp = ramp_of(n, args)
    per = [n // args.clients + (k < n % args.clients) for k in range(args.clients)]
    procs = [multiprocessing.Process(target=client, args=(url, body, c, ramp,
                                                          k * ramp / n / args.clients,
                                                          args.client, out))
             for k, c in enumerate(per) if c]
    base = {p: rss_kb(p) for p in watch} if watch else {}
    cpu0 = {p: cpu_seconds(p) for p in (*(watch or ()), *([sim] if sim else []))}
    began = time.monotonic()
    tcp0 = tcp_counters()
    peak = dict(base)
    stop = threading.Event()

    busiest = dict.fromkeys(cpu0, 0.0)  # the most CPU each used in any one second

    def sample() -> None:
        last = dict(cpu0)
        ticks = 0
        while not stop.wait(0.5):
            for p in peak:
                peak[p] = max(peak[p], rss_kb(p))
            ticks += 1
            if ticks % 2 == 0:
                for p in busiest:
                    now = cpu_seconds(p)
                    busiest[p], last[p] = max(busiest[p], now - last[p]), now

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for p in procs:
        p.start()
    parts = [out.get() for _ in procs]
    for p in procs:
        p.join()
    stop.set()
    sampler.join()
    ttfts = [t for part in parts for t in part["ttfts"]]
    gaps = [g for part in parts for g in part["gaps"]]
    lags = [lag for part in parts for lag in part["lags"]]
    by_second: dict[int, list[float]] = {}
    for delay, ttft in (o for part in parts for o in part["opened"]):
        by_second.setdefault(int(delay), []).append(ttft)
    result = {"streams": n, "errors": sum(part["errors"] for part in parts),
              "ttft_p50_ms": pick(ttfts, 0.5) if ttfts else None,
              "ttft_p99_ms": pick(ttfts, 0.99) if ttfts else None,
              "gap_p50_ms": pick(gaps, 0.5) if gaps else None,
              "gap_p99_ms": pick(gaps, 0.99) if gaps else None, "chunks": len(gaps),
              "gaps_per_stream": len(gaps) / max(1, n - sum(p["errors"] for p in parts)),
              "wall_s": time.monotonic() - began,
              "client_cpu_s": sum(part["cpu_s"] for part in parts),
              "client_lag_p99_ms": pick(lags, 0.99) if lags else None,
              "tcp": {k: v - tcp0[k] for k, v in tcp_counters().items()},
              # TTFT p99 of the streams opened in each second of the ramp: where opens queued.
              "ttft_p99_by_open_second": {k: round(pick(v, 0.99), 1)
                                          for k, v in sorted(by_second.items())}}
    if sim:
        result["sim_cpu_s"] = cpu_seconds(sim) - cpu0[sim]
        result["sim_busiest_second"] = busiest[sim]
    if watch:
        host, worker = watch
        result.update({"host_rss_mb": peak[host] / 1024, "worker_rss_mb": peak[worker] / 1024,
                       "host_rss_before_mb": base[host] / 1024,
                       "worker_rss_before_mb": base[worker] / 1024,
                       "kb_per_stream": (peak[host] + peak[worker] - idle[host] - idle[worker])
                       / n,
                       "host_cpu_s": cpu_seconds(host) - cpu0[host],
                       "worker_cpu_s": cpu_seconds(worker) - cpu0[worker],
                       # CPU seconds in the busiest second: 1.0 is a whole core, and the
                       # worker and the host are one event loop each.
                       "host_busiest_second": busiest[host],
                       "worker_busiest_second": busiest[worker],
                       "cpu_s": sum(cpu_seconds(p) - cpu0[p] for p in watch)})
    return result


def simulator(logs: Path, args):
    """The backend: load/stream_sim.py (`--sim lean`) or the Node simulator (`--sim node`)."""
    if args.sim == "node":
        return spawn_node("simulator", logs, {"TTFT_MS": str(args.chunk_ms),
                                              "TOKEN_MS": str(args.chunk_ms),
                                              "ANSWER_TOKENS": str(chunks_of(args))})
    port = free_port()
    return spawn("simulator", [PYTHON, str(ROOT / "load/stream_sim.py"), "--port", str(port),
                               "--ttft-ms", str(args.chunk_ms), "--token-ms", str(args.chunk_ms)],
                 port=port, log_dir=logs)


def start(logs: Path, args) -> tuple[list, str, str]:
    sim = simulator(logs, args)
    gateway = start_gateway(logs, args, sim.url, ROOT, "gateway")
    return [sim, gateway], f"{sim.url}/v1/chat/completions", f"{gateway.url}/v1/chat/completions"


def start_gateway(logs: Path, args, sim_url: str, tree: Path, name: str):
    """One host + worker running `tree` (this one, or --base's export) against the backend."""
    port = free_port()
    return spawn(name, HOST_CMD, port=port, log_dir=logs, timeout=180, cwd=tree, env={
        **WORKER_ENV, **FAR, "PORT": str(port), "RATE_LIMIT_STORAGE_CONNECTION": "",
        "CLIENT_TPM": "1e9", "MODEL_TPM": "1e9", "MODEL_ROUTES": json.dumps({MODEL: sim_url}),
        # The pool towards backends must hold every stream: its default (512) would answer
        # 503 overloaded past 512 streams (see docs/PERFORMANCE.md, issue #26).
        "UPSTREAM_MAX_CONNECTIONS": str(max(args.levels) * 2),
        **({"UPSTREAM_CLIENT": args.upstream_client} if args.upstream_client else {}),
        **({"PYTHONPATH": str(ROOT / "load/gcwatch"), "GCWATCH_FILE": str(logs / "gc"),
            "GCWATCH_THRESHOLD": args.gc_threshold or ""} if args.gc_watch else {})})


def start_reference(logs: Path, sim_url: str, extra: dict[str, str] | None = None):
    """The bare streaming function (load/tenline_stream) on a host + worker of its own."""
    port = free_port()
    return spawn(REFERENCE, [*HOST_CMD, "--app-dir", str(ROOT / "load/tenline_stream")],
                 port=port, log_dir=logs, ready_path=None, timeout=180,
                 env={**WORKER_ENV, **(extra or {}), "PORT": str(port), "BACKEND_URL": sim_url})


def report(rows: list[dict], best: int | None, args) -> str:
    lines = [f"{args.stream_s:.0f} s streams, a chunk every {args.chunk_ms} ms, opened at 100/s "
             f"(--ramp-s {args.ramp_s}) by {args.clients} client processes; load average "
             f"{os.getloadavg()[0]:.1f}", "",
             "| N | errors (direct / gw) | TTFT p50 / p99 added ms | gap p50 / p99 added ms | "
             "host RSS MB | worker RSS MB | KB per stream | CPU s (host+worker) |",
             "|---:|---|---|---|---:|---:|---:|---:|"]
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    for r in rows:
        for name, prefix in (("gateway", ""), ("base", "base_"), (REFERENCE, f"{REFERENCE}_")):
            if name not in r:
                continue
            g, d = r[name], r["direct"]
            label = f"{r['n']}" + {"gateway": "", "base": f" ({args.base})"}.get(name, f" ({name})")
            lines.append(f"| {label} | {d['errors']} / {g['errors']} | "
                         f"{fmt(r[prefix + 'ttft_p50_added'])} / "
                         f"{fmt(r[prefix + 'ttft_p99_added'])} | "
                         f"{fmt(r[prefix + 'gap_p50_added'])} / {fmt(r[prefix + 'gap_p99_added'])}"
                         f" | {g['host_rss_mb']:.0f} | {g['worker_rss_mb']:.0f} | "
                         f"{g['kb_per_stream']:.0f} | {g['cpu_s']:.1f} |")
    lines += ["", f"largest N within {TARGET_ADDED_MS:.0f} ms added at p99 (TTFT and gap), "
              f"0 errors: **{best}**"]
    if any(f"over_{REFERENCE}" in r for r in rows):
        lines += ["", f"{REFERENCE} (load/tenline_stream) within the target: "
                  f"**{within_target(rows, REFERENCE, TARGET_ADDED_MS)}**", "",
                  *comparison_table(rows)]
    return "\n".join(lines)


def settle(pids: tuple[int, ...], limit_s: float, quiet: float = 0.05) -> float:
    """Wait (at most limit_s) until the processes used less than `quiet` of a core together
    over a second; the seconds waited. So that a target's work after its streams end cannot
    land in the next phase (at 500-1,000 streams the phase run second mostly had the longer
    TTFT tail; in pass 9 each target went idle within the first second)."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(1.0)
        if sum(cpu_seconds(p) for p in pids) - before < quiet:
            break
    return time.monotonic() - began


def level(n: int, k: int, direct_url: str, gateways: dict, watches: dict, idle: dict,
          sim: int, args) -> dict:
    """One level: N streams direct, then through each target (with --base or --reference, the
    order alternates from level to level); added = target minus direct, and with the
    reference the gateway over it (load/streams_reference.py)."""
    def beside(name: str | None, run):  # run(), and what the idle targets spent meanwhile
        others = [p for other in gateways if other != name for p in watches[other]]
        before = sum(cpu_seconds(p) for p in others)
        result = run()
        # The idle targets' hosts and workers (pool keep-alive expiries, timers): CPU this
        # phase competed with.
        result["others_cpu_s"] = sum(cpu_seconds(p) for p in others) - before
        return result

    row: dict = {"n": n, "direct": beside(None, lambda: phase(direct_url, n, args, None,
                                                              sim=sim))}
    names = list(gateways) if k % 2 == 0 else list(gateways)[::-1]
    for name in names:
        mark(row, name, beside(name, lambda u=gateways[name], w=watches[name]: phase(
            u, n, args, w, idle, sim=sim)))
        if args.settle_s:  # the target's after-work stays out of the next phase
            row[name]["settled_s"] = settle(watches[name], args.settle_s)
    if REFERENCE in row:
        row[f"over_{REFERENCE}"] = over_reference(row)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="100,250,500,1000,1500",
                        type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--stream-s", type=float, default=20.0)
    parser.add_argument("--ramp-s", type=float, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                        help="the client's implementation (load/stream_client.py)")
    parser.add_argument("--sim", choices=("lean", "node"), default="lean",
                        help="the backend: load/stream_sim.py or the Node simulator")
    parser.add_argument("--upstream-client", default=None,
                        help="UPSTREAM_CLIENT for the gateway (default: the product's default)")
    parser.add_argument("--gc-watch", action="store_true",
                        help="log the host's and worker's full GC pauses (load/gcwatch) in logs")
    parser.add_argument("--gc-threshold", default=None,
                        help="with --gc-watch: host and worker gc.set_threshold, e.g. 2000,10,100")
    parser.add_argument("--base", default=None,
                        help="also run each level through a gateway of this commit (git "
                             "archive), interleaved; its rows are marked base")
    parser.add_argument("--reference", choices=(REFERENCE,), default=None,
                        help="also run each level through a bare streaming function "
                             "(load/tenline_stream), interleaved; its rows are marked tenline")
    parser.add_argument("--settle-s", type=float, default=15.0,
                        help="after each target's phase, wait up to this long for its host and "
                        "worker to go idle (0: no wait); the wait is in the row as settled_s")
    parser.add_argument("--out", default=str(ROOT / "load/results/bench_streams.json"))
    args = parser.parse_args()
    raise_fd_limit()  # inherited by the host, the worker and the clients
    load_start = os.getloadavg()
    logs = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    procs, direct_url, gw_url = start(logs, args)
    rows = []
    try:
        gateways = {"gateway": gw_url}
        if args.base:  # the same levels through a gateway of an earlier commit, interleaved
            procs.append(start_gateway(logs, args, procs[0].url, export_tree(args.base, logs),
                                       "base"))
            gateways["base"] = f"{procs[-1].url}/v1/chat/completions"
        if args.reference:  # the platform's floor: a bare streaming function, interleaved
            procs.append(start_reference(logs, procs[0].url))
            gateways[REFERENCE] = f"{procs[-1].url}/v1/chat/completions"
        watches = {name: host_and_worker(proc)
                   for name, proc in zip(gateways, procs[1:], strict=True)}
        short = argparse.Namespace(**{**vars(args), "stream_s": 1.0, "ramp_s": 0.5})
        idle = {}
        for name, url in gateways.items():
            phase(url, 10, short, None)  # warm-up: the gateway's first build, pools
            idle.update({p: rss_kb(p) for p in watches[name]})
        for k, n in enumerate(args.levels):
            row = level(n, k, direct_url, gateways, watches, idle, procs[0].popen.pid, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for proc in procs:
            proc.stop()
    best = within_target(rows, "gateway", TARGET_ADDED_MS)
    print(report(rows, best, args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"levels": rows, "largest_within_target": best,
                               "largest_within_target_by": {
                                   name: within_target(rows, name, TARGET_ADDED_MS)
                                   for name in gateways},
                               "target_added_ms": TARGET_ADDED_MS, "args": vars(args),
                               "load_average_start": load_start,
                               "load_average": os.getloadavg(), "logs": str(logs),
                               # whose --gc-watch files (gc.<pid>) are whose: host, worker
                               "pids": watches}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
