"""How many streamed chat completions one instance (one local Functions host + the real worker)
holds within 10 ms added latency, and what each costs in memory and CPU.

    .venv/bin/python load/bench_streams.py [--levels 100,250,500,1000,1500]   (make bench-streams)

For each N in --levels: N streams straight to the Node simulator, then N through the gateway
(an OpenAI route to the same simulator; token and request limits on with an in-memory store, far
from binding; cache and telemetry on), each phase alone on the machine. The simulator sends a
chunk every --chunk-ms (100 ms) for --stream-s (20 s). The streams are opened evenly over
--ramp-s (default: 100 a second, 5-15 s) by --clients client processes (aiohttp), so the
client is not the bottleneck. Per phase:
time to first token (TTFT, from sending the request to the first data event) and the gap
between successive chunks, p50/p99; added = gateway minus direct at the same percentile.
During the gateway phase the host's and the worker's RSS (peak, from /proc) and CPU are read;
memory per stream = (peak RSS of both - their RSS before the phase) / N.
Writes load/results/bench_streams.json and prints a table.
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

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, cpu_seconds, host_and_worker, pick  # noqa: E402

from scripts.procs import HOST_CMD, WORKER_ENV, free_port, spawn, spawn_node  # noqa: E402

MODEL = "sim-stream"
TARGET_ADDED_MS = 10.0


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def one_stream(session, url: str, body: dict, delay: float) -> dict:
    """One stream: TTFT, the gaps between chunks (ms) and whether it ended with [DONE]."""
    await asyncio.sleep(delay)
    start = time.perf_counter()
    last = None
    ttft, gaps, tail = None, [], b""
    try:
        async with session.post(url, json=body) as response:
            async for chunk in response.content.iter_any():
                now = time.perf_counter()
                if b"data:" in chunk:
                    if last is None:
                        ttft = (now - start) * 1000
                    else:
                        gaps.append((now - last) * 1000)
                    last = now
                tail = (tail + chunk)[-64:]
            ok = response.status == 200 and b"data: [DONE]" in tail
    except (TimeoutError, aiohttp.ClientError, OSError):
        ok = False
    return {"ttft": ttft, "gaps": gaps, "ok": ok}


def client(url: str, body: dict, count: int, ramp_s: float, offset: float, out) -> None:
    """A client process: `count` streams, the k-th opened at offset + k * ramp_s / count."""
    raise_fd_limit()

    async def run() -> list[dict]:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            return await asyncio.gather(*(one_stream(session, url, body,
                                                     offset + k * ramp_s / max(count, 1))
                                          for k in range(count)))

    results = asyncio.run(run())
    ttfts = [r["ttft"] for r in results if r["ok"] and r["ttft"] is not None]
    gaps = [g for r in results if r["ok"] for g in r["gaps"]]
    out.put({"ttfts": ttfts, "gaps": gaps, "errors": sum(not r["ok"] for r in results)})


def chunks_of(args) -> int:
    """Chunks (tokens) per stream: one every --chunk-ms for --stream-s."""
    return int(args.stream_s * 1000 / args.chunk_ms)


def ramp_of(n: int, args) -> float:
    """--ramp-s, or by default 100 new streams a second (5 s at least, 15 s at most, so that
    every stream of 20 s is open together at the end of the ramp)."""
    return args.ramp_s or min(15.0, max(5.0, n / 100))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def phase(url: str, n: int, args, watch: tuple[int, int] | None, idle: dict | None = None
          ) -> dict:
    """N streams from --clients processes; with `watch` (host pid, worker pid), their peak RSS
    and CPU over the phase; memory per stream counts from `idle` (RSS before any level)."""
    body = {"model": MODEL, "stream": True, "max_tokens": chunks_of(args),
            "messages": [{"role": "user", "content": "Hold the line."}]}
    out = multiprocessing.Queue()
    ramp = ramp_of(n, args)
    per = [n // args.clients + (k < n % args.clients) for k in range(args.clients)]
    procs = [multiprocessing.Process(target=client, args=(url, body, c, ramp,
                                                          k * ramp / n / args.clients, out))
             for k, c in enumerate(per) if c]
    base = {p: rss_kb(p) for p in watch} if watch else {}
    cpu0 = {p: cpu_seconds(p) for p in watch} if watch else {}
    peak = dict(base)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            for p in peak:
                peak[p] = max(peak[p], rss_kb(p))

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
    result = {"streams": n, "errors": sum(part["errors"] for part in parts),
              "ttft_p50_ms": pick(ttfts, 0.5) if ttfts else None,
              "ttft_p99_ms": pick(ttfts, 0.99) if ttfts else None,
              "gap_p50_ms": pick(gaps, 0.5) if gaps else None,
              "gap_p99_ms": pick(gaps, 0.99) if gaps else None, "chunks": len(gaps),
              "gaps_per_stream": len(gaps) / max(1, n - sum(p["errors"] for p in parts))}
    if watch:
        host, worker = watch
        result.update({"host_rss_mb": peak[host] / 1024, "worker_rss_mb": peak[worker] / 1024,
                       "host_rss_before_mb": base[host] / 1024,
                       "worker_rss_before_mb": base[worker] / 1024,
                       "kb_per_stream": (peak[host] + peak[worker] - idle[host] - idle[worker])
                       / n,
                       "cpu_s": sum(cpu_seconds(p) - cpu0[p] for p in watch)})
    return result


def start(logs: Path, args) -> tuple[list, str, str]:
    sim = spawn_node("simulator", logs, {"TTFT_MS": str(args.chunk_ms),
                                         "TOKEN_MS": str(args.chunk_ms),
                                         "ANSWER_TOKENS": str(chunks_of(args))})
    port = free_port()
    gateway = spawn("gateway", HOST_CMD, port=port, log_dir=logs, timeout=120, env={
        **WORKER_ENV, **FAR, "PORT": str(port), "RATE_LIMIT_STORAGE_CONNECTION": "",
        "CLIENT_TPM": "1e9", "MODEL_TPM": "1e9", "MODEL_ROUTES": json.dumps({MODEL: sim.url}),
        # The pool towards backends must hold every stream: its default (512) would answer
        # 503 overloaded past 512 streams (see docs/PERFORMANCE.md, issue #26).
        "UPSTREAM_MAX_CONNECTIONS": str(max(args.levels) * 2)})
    return [sim, gateway], f"{sim.url}/v1/chat/completions", f"{gateway.url}/v1/chat/completions"


def added(gw: dict, direct: dict, key: str) -> float | None:
    if gw[key] is None or direct[key] is None:
        return None
    return gw[key] - direct[key]


def report(rows: list[dict], best: int | None, args) -> str:
    lines = [f"{args.stream_s:.0f} s streams, a chunk every {args.chunk_ms} ms, opened at 100/s "
             f"(--ramp-s {args.ramp_s}) by {args.clients} client processes; load average "
             f"{os.getloadavg()[0]:.1f}", "",
             "| N | errors (direct / gw) | TTFT p50 / p99 added ms | gap p50 / p99 added ms | "
             "host RSS MB | worker RSS MB | KB per stream | CPU s (host+worker) |",
             "|---:|---|---|---|---:|---:|---:|---:|"]
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    for r in rows:
        g, d = r["gateway"], r["direct"]
        lines.append(f"| {r['n']} | {d['errors']} / {g['errors']} | {fmt(r['ttft_p50_added'])} / "
                     f"{fmt(r['ttft_p99_added'])} | {fmt(r['gap_p50_added'])} / "
                     f"{fmt(r['gap_p99_added'])} | {g['host_rss_mb']:.0f} | "
                     f"{g['worker_rss_mb']:.0f} | {g['kb_per_stream']:.0f} | {g['cpu_s']:.1f} |")
    lines += ["", f"largest N within {TARGET_ADDED_MS:.0f} ms added at p99 (TTFT and gap), "
              f"0 errors: **{best}**"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="100,250,500,1000,1500",
                        type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--stream-s", type=float, default=20.0)
    parser.add_argument("--ramp-s", type=float, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "load/results/bench_streams.json"))
    args = parser.parse_args()
    raise_fd_limit()  # inherited by the host, the worker and the clients
    logs = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    procs, direct_url, gw_url = start(logs, args)
    rows = []
    try:
        watch = host_and_worker(procs[1])
        short = argparse.Namespace(**{**vars(args), "stream_s": 1.0, "ramp_s": 0.5})
        phase(gw_url, 10, short, None)  # warm-up: the gateway's first build, pools
        idle = {p: rss_kb(p) for p in watch}
        for n in args.levels:
            direct = phase(direct_url, n, args, None)
            gateway = phase(gw_url, n, args, watch, idle)
            row = {"n": n, "direct": direct, "gateway": gateway,
                   **{f"{k}_added": added(gateway, direct, f"{k}_ms")
                      for k in ("ttft_p50", "ttft_p99", "gap_p50", "gap_p99")}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for proc in procs:
            proc.stop()
    within = [r["n"] for r in rows if r["direct"]["errors"] == r["gateway"]["errors"] == 0
              and all(r[k] is not None and r[k] <= TARGET_ADDED_MS
                      for k in ("ttft_p99_added", "gap_p99_added"))]
    best = max(within) if within else None
    print(report(rows, best, args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"levels": rows, "largest_within_target": best,
                               "target_added_ms": TARGET_ADDED_MS, "args": vars(args),
                               "load_average": os.getloadavg(), "logs": str(logs)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
