"""What the guardrails add to a stream's time to first token, in one run against one gateway.

    .venv/bin/python load/bench_guardrails.py [--concurrency 4] [--per-worker 40]

One gateway (through the local Functions host and the real worker) routes four model names to
the same Node simulator; GUARDRAILS gives each its own policy:
    off          no policy (the baseline)
    input        Prompt Shields + Content Safety (block) and PII redaction on the prompt
    window-S     output Content Safety on windows of S characters (two sizes, --windows)
Content Safety is the local simulator (services/contentsafety) on loopback, so the figures are
the gateway's own cost plus one loopback round trip per check; in Azure add the service's
latency once per input check (they run concurrently) and once per window.
Every prompt is unique (a counter in it), so no check is served from the cache. Workers cycle
over the targets, one stream at a time, so all see the same moments and machine load.
Reports TTFT p50/p95 and the mean gap between content events per target, the difference and
ratio to `off`. Writes load/results/bench_guardrails.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.procs import HOST_CMD, WORKER_ENV, free_port, spawn  # noqa: E402
from tests.support.contentsafety_sim import SIM_KEY, spawn_content_safety  # noqa: E402

COUNTER = itertools.count()


async def one_stream(session: aiohttp.ClientSession, url: str, model: str
                     ) -> tuple[float | None, list[float], bool]:
    """(TTFT ms, gaps between data events in ms, ok: 200 and [DONE])."""
    body = {"model": model, "stream": True, "max_tokens": 16, "messages": [
        {"role": "user", "content": f"Tell request {next(COUNTER)} a calm story please."}]}
    start = time.perf_counter()
    stamps: list[float] = []
    tail = b""
    try:
        async with session.post(url, json=body) as response:
            async for chunk in response.content.iter_any():
                if b"data:" in chunk:
                    stamps.append((time.perf_counter() - start) * 1000)
                tail = (tail + chunk)[-64:]
            ok = response.status == 200 and b"data: [DONE]" in tail
    except (TimeoutError, aiohttp.ClientError):
        return None, [], False
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return (stamps[0] if stamps else None), gaps, ok


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure(url: str, models: list[str], args) -> dict[str, dict]:
    ttfts: dict[str, list[float]] = {m: [] for m in models}
    gaps: dict[str, list[float]] = {m: [] for m in models}
    errors = dict.fromkeys(models, 0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker(offset: int) -> None:
            for i in range(len(models) * (args.per_worker + 1)):
                model = models[(i + offset) % len(models)]
                first, between, ok = await one_stream(session, url, model)
                if i < len(models):
                    continue  # warm-up
                errors[model] += not ok
                if ok and first is not None:
                    ttfts[model].append(first)
                    gaps[model].extend(between)

        await asyncio.gather(*(worker(k) for k in range(args.concurrency)))
    return {m: {"ttft_p50_ms": pct(ttfts[m], 0.5), "ttft_p95_ms": pct(ttfts[m], 0.95),
                "gap_mean_ms": sum(gaps[m]) / len(gaps[m]) if gaps[m] else float("nan"),
                "gap_p95_ms": pct(gaps[m], 0.95), "streams": len(ttfts[m]),
                "errors": errors[m]} for m in models}


def policies(windows: list[int]) -> list[dict]:
    found = [{"name": "input", "models": ["input"], "fail": "closed",
              "input": {"prompt_shields": "block", "content_safety": "block", "pii": "redact"}}]
    found += [{"name": f"window-{w}", "models": [f"window-{w}"], "fail": "closed",
               "window_chars": w, "output": {"content_safety": "block"}} for w in windows]
    return found


def start_stack(logs: Path, args) -> tuple[list, str, list[str]]:
    node_port, gw_port = free_port(), free_port()
    node = spawn("guard-bench-backend", ["node", "server.js"], port=node_port, log_dir=logs,
                 cwd=ROOT / "services/node", env={"PORT": str(node_port), "TTFT_MS": "20",
                                                  "TOKEN_MS": str(args.token_ms)})
    safety = spawn_content_safety(logs, name="guard-bench-contentsafety", CS_RPS="100000")
    models = ["off", "input", *(f"window-{w}" for w in args.windows)]
    gateway = spawn("guard-bench-gateway", HOST_CMD, port=gw_port, log_dir=logs, env={
        **WORKER_ENV, "PORT": str(gw_port), "RATE_LIMIT_STORAGE_CONNECTION": "",
        "MODEL_ROUTES": json.dumps(dict.fromkeys(models, node.url)),
        "GUARDRAILS": json.dumps(policies(args.windows)), "CONTENT_SAFETY_AUTH": "key",
        "CONTENT_SAFETY_ENDPOINT": safety.url, "CONTENT_SAFETY_KEY": SIM_KEY,
        "CONTENT_SAFETY_RPS": "100000", "CACHE_ENABLED": "false"})
    return [node, safety, gateway], f"{gateway.url}/v1/chat/completions", models


def report(results: dict[str, dict], args) -> str:
    base = results["off"]
    lines = [f"Streams through one gateway, {args.concurrency} concurrent, {args.per_worker} per "
             f"worker and target; backend TTFT 20 ms, {args.token_ms} ms per token, 16 tokens "
             "(about 90 characters); Content Safety simulator on loopback; unique prompts "
             "(no cache hits).", "",
             "| policy | streams | TTFT p50 ms | TTFT p95 ms | added p50 ms | ratio p50 | "
             "gap mean ms | gap p95 ms | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        added = r["ttft_p50_ms"] - base["ttft_p50_ms"]
        ratio = r["ttft_p50_ms"] / base["ttft_p50_ms"]
        lines.append(f"| {name} | {r['streams']} | {r['ttft_p50_ms']:.1f} | "
                     f"{r['ttft_p95_ms']:.1f} | {added:+.1f} | {ratio:.2f}x | "
                     f"{r['gap_mean_ms']:.1f} | {r['gap_p95_ms']:.1f} | {r['errors']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--per-worker", type=int, default=40)
    parser.add_argument("--token-ms", type=int, default=10)
    parser.add_argument("--windows", type=int, nargs=2, default=[20, 80])
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-guardrails-"))
    procs, url, models = start_stack(logs, args)
    try:
        results = asyncio.run(measure(url, models, args))
    finally:
        for proc in procs:
            proc.stop()
    print(report(results, args))
    out = ROOT / "load/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_guardrails.json").write_text(json.dumps(
        {"results": results, "args": vars(args)}, indent=2))
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
