"""Response cache benchmarks, in one run on one machine (make bench-cache).

1. Hit ratio of the `cache` profile's load (closed loop, --workers on GET /slow/<backend>,
   --seconds per case) for each backend, with one gateway (memory tier) and with three gateway
   instances sharing a real redis-server or Azurite Blob; ratio from the instances' /cachez.
2. Memory-tier hit vs proxying: wrk, closed loop, --connections, on one route to a backend that
   answers at once (the node simulator's /healthz), once with `Cache-Control: no-store` (every
   request proxied) and once cached; the ratio of the two throughputs.
3. A streamed completion replayed from the cache: time to first event over --streams sequential
   requests, against the first (upstream) stream's.
Writes load/results/bench_cache.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import wrk  # noqa: E402
from bench_stream import one_stream, pct  # noqa: E402

from scripts.cache_servers import AzuriteBlob, RedisServer  # noqa: E402
from scripts.procs import HOST_CMD, PYTHON, WORKER_ENV, free_port, spawn  # noqa: E402

UNLIMITED = {"GLOBAL_RPS": "0", "CLIENT_RPS": "0"}
ROUTES = [{"path": "/instant", "methods": ["GET"], "backend": "node", "upstream_path": "/healthz"}]


def backends(logs: Path) -> list:
    py_port, node_port = free_port(), free_port()
    python = spawn("python", [PYTHON, "-m", "uvicorn", "app:app", "--port", str(py_port),
                              "--no-access-log"], port=py_port, log_dir=logs,
                   cwd=ROOT / "services/python", env={"PORT": str(py_port)})
    node = spawn("node", ["node", "server.js"], port=node_port, log_dir=logs,
                 cwd=ROOT / "services/node", env={"PORT": str(node_port)})
    return [python, node]


def gateway(logs: Path, name: str, sims: list, **env: str):
    port = free_port()
    return spawn(name, HOST_CMD, port=port, log_dir=logs,
                 env={**WORKER_ENV, "PORT": str(port), "PY_SERVICE_URL": sims[0].url,
                      "NODE_SERVICE_URL": sims[1].url, "GATEWAY_ROUTES": json.dumps(
                          [*ROUTES, {"path": "/infer/python", "backend": "python",
                                     "upstream_path": "/infer"}]),
                      "CACHE_COMPLETIONS": "sim-python", **UNLIMITED, **env})


async def closed_loop(urls: list[str], seconds: float, workers: int) -> dict:
    counts = {"HIT": 0, "MISS": 0, "other": 0, "errors": 0}
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker(index: int) -> None:
            sent = index
            while time.monotonic() < deadline:
                url = urls[sent % len(urls)]
                sent += 1
                # One public host name for every instance, as behind Azure's front end: the
                # cache key holds the host the backend is told (cache/inputs.py).
                async with session.get(url, headers={"Host": "gateway.bench"}) as response:
                    await response.read()
                    if response.status != 200:
                        counts["errors"] += 1
                    counts[response.headers.get("x-cache", "other")
                           if response.headers.get("x-cache") in ("HIT", "MISS") else "other"] += 1

        await asyncio.gather(*(worker(i) for i in range(workers)))
    return counts


def hit_ratio_case(logs: Path, sims: list, shared: str, instances: int, args,
                   env: dict[str, str]) -> dict:
    procs = [gateway(logs, f"gw-{shared}-{i}", sims, CACHE_BACKEND=shared, **env)
             for i in range(instances)]
    try:
        result = {}
        for backend in ("python", "node"):
            path = f"/slow/{backend}?bench={uuid.uuid4().hex}"
            client = asyncio.run(closed_loop([p.url + path for p in procs], args.seconds,
                                             args.workers))
            result[backend] = client
        reports = [httpx.get(p.url + "/cachez", timeout=5).json() for p in procs]
        hits, misses = sum(r["hits"] for r in reports), sum(r["misses"] for r in reports)
        for backend in ("python", "node"):
            c = result[backend]
            c["hit_ratio"] = round(c["HIT"] / max(1, c["HIT"] + c["MISS"] + c["other"]), 5)
            c["rps"] = round((c["HIT"] + c["MISS"] + c["other"]) / args.seconds, 1)
        result["cachez"] = {"hits": hits, "misses": misses, "coalesced":
                            sum(r["coalesced"] for r in reports),
                            "shared": [r["tiers"].get(shared) for r in reports]}
        return result
    finally:
        for proc in procs:
            proc.stop()


def hit_vs_proxy(logs: Path, sims: list, args) -> dict:
    proc = gateway(logs, "gw-speed", sims)
    try:
        url = proc.url + "/instant"
        script = Path(tempfile.mkdtemp()) / "nostore.lua"
        script.write_text('wrk.headers["Cache-Control"] = "no-store"\n')
        plain = Path(tempfile.mkdtemp()) / "plain.lua"
        plain.write_text("\n")
        wrk(url, 2, args.connections, script)  # warm-up
        proxied = wrk(url, args.wrk_seconds, args.connections, script)
        cached = wrk(url, args.wrk_seconds, args.connections, plain)
        return {"proxied": proxied, "memory hit": cached,
                "speedup": round(cached["rps"] / proxied["rps"], 2)}
    finally:
        proc.stop()


async def replay_ttft(url: str, streams: int) -> dict:
    body = {"model": "sim-python", "stream": True, "max_tokens": 16,
            "messages": [{"role": "user", "content": f"replay {uuid.uuid4().hex}"}]}
    base = url.rsplit("/v1/", 1)[0]
    async with aiohttp.ClientSession() as session:
        first, ok = await one_stream(session, url, body)
        assert ok, "the priming stream failed"
        ttfts, floor = [], []
        for _ in range(streams):
            ttft, ok = await one_stream(session, url, body)
            assert ok and ttft is not None
            ttfts.append(ttft)
            # Reference, interleaved: the cheapest round trip the gateway serves (/healthz).
            start = time.perf_counter()
            async with session.get(base + "/healthz") as response:
                await response.read()
            floor.append((time.perf_counter() - start) * 1000)
    return {"upstream_ttft_ms": round(first, 2), "replay_p50_ms": round(pct(ttfts, 0.5), 3),
            "replay_p95_ms": round(pct(ttfts, 0.95), 3), "healthz_p50_ms":
            round(pct(floor, 0.5), 3), "healthz_p95_ms": round(pct(floor, 0.95), 3),
            "streams": streams}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--streams", type=int, default=300)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    sims = backends(logs)
    redis, blob = RedisServer(logs).start(), AzuriteBlob(logs).start()
    try:
        results = {
            "hit ratio, 1 instance, memory": hit_ratio_case(logs, sims, "memory", 1, args, {}),
            "hit ratio, 3 instances, redis": hit_ratio_case(
                logs, sims, "redis", 3, args, {"CACHE_REDIS_URL": redis.url}),
            "hit ratio, 3 instances, blob": hit_ratio_case(
                logs, sims, "blob", 3, args, {"CACHE_BLOB_CONNECTION": blob.connection_string}),
            "memory hit vs proxy": hit_vs_proxy(logs, sims, args),
        }
        proc = gateway(logs, "gw-replay", sims)
        try:
            results["stream replay"] = asyncio.run(
                replay_ttft(proc.url + "/v1/chat/completions", args.streams))
        finally:
            proc.stop()
    finally:
        for proc in sims:
            proc.stop()
        redis.stop()
        blob.stop()
    out = ROOT / "load" / "results" / "bench_cache.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    return 0


def report(results: dict) -> str:
    lines = ["| case | backend | requests/s | hit ratio (client) | misses (all instances) |",
             "|---|---|---|---|---|"]
    for name, case in results.items():
        if not name.startswith("hit ratio"):
            continue
        for backend in ("python", "node"):
            c = case[backend]
            lines.append(f"| {name} | {backend} | {c['rps']} | {c['hit_ratio']} | "
                         f"{c['MISS']} |")
    speed = results["memory hit vs proxy"]
    lines += ["", "| /instant, wrk 32 connections | requests/s | p50 ms | p99 ms |",
              "|---|---|---|---|"]
    lines += [f"| {k} | {v['rps']} | {v['p50_ms']} | {v['p99_ms']} |" for k, v in speed.items()
              if isinstance(v, dict)]
    lines.append(f"\nmemory hit / proxied throughput: {speed['speedup']}x")
    replay = results["stream replay"]
    lines.append(f"stream replay TTFT p50 {replay['replay_p50_ms']} ms, p95 "
                 f"{replay['replay_p95_ms']} ms over {replay['streams']} streams (upstream "
                 f"first stream {replay['upstream_ttft_ms']} ms); interleaved GET /healthz p50 "
                 f"{replay['healthz_p50_ms']} ms, p95 {replay['healthz_p95_ms']} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
