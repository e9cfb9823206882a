"""Streamed chat completions, straight to the backend and through the gateway, in one run.

    .venv/bin/python load/bench_stream.py

1. Time to first token (TTFT): --concurrency closed-loop streams, each worker cycling over the
   backend directly, load/refproxy.py (a minimal aiohttp proxy, for scale) and the gateway
   (token limits on, the defaults: CLIENT_TPM 200000, MODEL_TPM 1000000), so all three see the
   same moments and machine load. TTFT is the time from sending the request
   to receiving the first SSE data event. Target: p95 added by the gateway <= 2 ms.
2. Many held streams: --streams streams opened over --ramp-s seconds through the gateway, each
   held open about 3 s by a slow backend (--hold-token-ms per token), so all are open together;
   token limits on. Target: every stream completes
   with 200 and [DONE], and the gateway's token counters reconcile with the usage reported.
The backend is the Node simulator (services/node), on 127.0.0.1 like everything else.
Writes load/results/bench_stream.json and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.procs import HOST_CMD, PYTHON, WORKER_ENV, free_port, spawn  # noqa: E402

MODEL = "sim-small"
BODY = {"model": MODEL, "stream": True, "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say hello in sixteen words please."}]}


async def one_stream(session: aiohttp.ClientSession, url: str, body: dict = BODY
                     ) -> tuple[float | None, bool]:
    """(TTFT in ms, ok): ok means 200, at least one data event and the final [DONE]."""
    start = time.perf_counter()
    ttft = None
    tail = b""
    try:
        async with session.post(url, json=body) as response:
            async for chunk in response.content.iter_any():
                if ttft is None and b"data:" in chunk:
                    ttft = (time.perf_counter() - start) * 1000
                tail = (tail + chunk)[-64:]
            return ttft, response.status == 200 and b"data: [DONE]" in tail
    except (TimeoutError, aiohttp.ClientError):
        return ttft, False


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def ttft(urls: dict[str, str], args) -> dict[str, dict]:
    """Every worker cycles through the targets, one stream at a time, so all targets share the
    same moments and machine load; the first cycle of each worker is a warm-up."""
    names = list(urls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    errors = dict.fromkeys(names, 0)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(offset: int) -> None:
            for i in range(len(names) * (args.per_worker + 1)):
                name = names[(i + offset) % len(names)]
                ttft_ms, ok = await one_stream(session, urls[name])
                if i < len(names):
                    continue  # warm-up
                errors[name] += not ok
                if ok and ttft_ms is not None:
                    samples[name].append(ttft_ms)

        await asyncio.gather(*(worker(k) for k in range(args.concurrency)))
    return {name: {"p50_ms": pct(s, 0.5), "p95_ms": pct(s, 0.95), "p99_ms": pct(s, 0.99),
                   "streams": len(s), "errors": errors[name]} for name, s in samples.items()}


async def held(url: str, streams: int, ramp_s: float) -> dict:
    """Open `streams` streams evenly over `ramp_s`; count how many were open together and the
    failures."""
    open_now = peak = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def tracked(index: int) -> tuple[float | None, bool]:
            nonlocal open_now, peak
            await asyncio.sleep(index * ramp_s / streams)
            open_now += 1
            peak = max(peak, open_now)
            try:
                return await one_stream(session, url, {**BODY, "model": "sim-held"})
            finally:
                open_now -= 1

        start = time.perf_counter()
        results = await asyncio.gather(*(tracked(i) for i in range(streams)))
        elapsed = time.perf_counter() - start
    ttfts = [t for t, ok in results if ok and t is not None]
    return {"streams": streams, "completed": sum(ok for _, ok in results),
            "errors": sum(not ok for _, ok in results), "peak_open": peak,
            "elapsed_s": elapsed, "ttft_p50_ms": pct(ttfts, 0.5), "ttft_p95_ms": pct(ttfts, 0.95)}


def start_stack(logs: Path, token_ms: int, hold_token_ms: int) -> tuple[list, dict[str, str]]:
    node = ROOT / "services/node"
    fast_port, slow_port, ref_port, gw_port = (free_port() for _ in range(4))
    fast = spawn("stream-backend", ["node", "server.js"], port=fast_port, log_dir=logs, cwd=node,
                 env={"PORT": str(fast_port), "TTFT_MS": "20", "TOKEN_MS": str(token_ms)})
    slow = spawn("held-backend", ["node", "server.js"], port=slow_port, log_dir=logs, cwd=node,
                 env={"PORT": str(slow_port), "TTFT_MS": "20", "TOKEN_MS": str(hold_token_ms)})
    ref = spawn("refproxy", [PYTHON, "-m", "uvicorn", "load.refproxy:app", "--port",
                             str(ref_port), "--no-access-log", "--log-level", "warning"],
                port=ref_port, log_dir=logs, env={"BACKEND_URL": fast.url}, ready_path=None)
    # Besides the OpenAI routes, a plain proxy route to the same backend: the difference between
    # the two is what the OpenAI handling (model routing, token limits, usage) costs.
    plain = [{"path": "/plain/*", "methods": ["POST"], "backend": "fast", "upstream_path": "/"}]
    gateway = spawn("gateway", HOST_CMD, port=gw_port,
                    log_dir=logs, env={**WORKER_ENV,
                        "PORT": str(gw_port), "RATE_LIMIT_STORAGE_CONNECTION": "",
                        "MODEL_ROUTES": json.dumps({MODEL: fast.url, "sim-held": slow.url}),
                        "GATEWAY_BACKENDS": json.dumps({"fast": fast.url}),
                        "GATEWAY_ROUTES": json.dumps(plain)})
    urls = {"direct": f"{fast.url}/v1/chat/completions",
            "reference proxy": f"{ref.url}/v1/chat/completions",
            "gateway, plain route": f"{gateway.url}/plain/v1/chat/completions",
            "gateway": f"{gateway.url}/v1/chat/completions"}
    return [fast, slow, ref, gateway], urls


async def token_totals(gateway_url: str) -> dict:
    base = gateway_url.removesuffix("/v1/chat/completions")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/_gateway/stats") as response:
            stats = await response.json()
    totals = stats["tokens"]["totals"]
    charged = totals["reserved_tokens"] - totals["refunded_tokens"] + totals["extra_charged_tokens"]
    return {**totals, "reconciled": charged == totals["prompt_tokens"] + totals["completion_tokens"]
            and totals["unreconciled_requests"] == 0,
            "limiter_denied": stats["limiter"]["denied"]}


def report(lat: dict, many: dict, tokens: dict, args) -> str:
    added50 = lat["gateway"]["p50_ms"] - lat["direct"]["p50_ms"]
    added95 = lat["gateway"]["p95_ms"] - lat["direct"]["p95_ms"]
    ref95 = lat["reference proxy"]["p95_ms"] - lat["direct"]["p95_ms"]
    lines = [f"TTFT, {args.concurrency} concurrent streams cycling over the targets, "
             f"{args.per_worker} per worker and target (backend TTFT 20 ms, {args.token_ms} ms "
             "per token, 16 tokens):", "",
             "| target | streams | TTFT p50 ms | TTFT p95 ms | TTFT p99 ms | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {r['streams']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['errors']} |" for name, r in lat.items()]
    lines += ["", f"TTFT added by the gateway: p50 **{added50:.2f} ms**, p95 **{added95:.2f} ms** "
              "(target p95 <= 2 ms); the reference proxy adds "
              f"{ref95:.2f} ms at p95", "",
              f"{many['streams']} streams through the gateway's OpenAI route, token limits on "
              f"({args.hold_token_ms} ms per token): completed {many['completed']}, "
              f"errors **{many['errors']}**, peak open {many['peak_open']}, "
              f"{many['elapsed_s']:.1f} s, TTFT p50 {many['ttft_p50_ms']:.1f} ms / "
              f"p95 {many['ttft_p95_ms']:.1f} ms; token counters reconciled: "
              f"{tokens['reconciled']} (prompt {tokens['prompt_tokens']}, completion "
              f"{tokens['completion_tokens']}, limiter denials {tokens['limiter_denied']})"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--per-worker", type=int, default=100)
    parser.add_argument("--token-ms", type=int, default=5)
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--hold-token-ms", type=int, default=200)
    parser.add_argument("--ramp-s", type=float, default=1.0)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    procs, urls = start_stack(logs, args.token_ms, args.hold_token_ms)
    try:
        lat = asyncio.run(ttft(urls, args))
        many = asyncio.run(held(urls["gateway"], args.streams, args.ramp_s))
        tokens = asyncio.run(token_totals(urls["gateway"]))
    finally:
        for proc in procs:
            proc.stop()
    print(report(lat, many, tokens, args))
    out = ROOT / "load/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_stream.json").write_text(json.dumps(
        {"ttft": lat, "held": many, "tokens": tokens, "args": vars(args)}, indent=2))
    ok = many["errors"] == 0 and tokens["reconciled"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
