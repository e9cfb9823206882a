"""The stream tap (function_app/openai/sse.py) fed one huge SSE event, before and after issue 22.

    .venv/bin/python load/bench_sse_tap.py [--sizes-mb 1 4 10] [--chunk 16384] [--before REV]
    .venv/bin/python load/bench_sse_tap.py --e2e [--streams 2]

For each size, one event of that many bytes without a blank line until its last two bytes is
fed to a StreamTap in --chunk byte pieces (about what the upstream client hands over), by:
- before: the tap as it was at git revision --before (read with `git show`, so the old code is
  measured, not a copy), which joined and searched the whole tail on every chunk;
- after, no cap: today's tap with a cap above the event, doing the same work (the event gets
  through whole), so the two differ only in how they parse;
- after, default cap: today's tap with SSE_MAX_EVENT_BYTES' default (1 MiB), which ends the
  stream once the event passes it (what a client gets from a hostile backend).
Each case is timed (CPU time of this process, best of --repeat: the machine is shared, and
the tap is single-threaded CPU work) and its peak of Python allocations measured
(tracemalloc, over a separate run so tracing does not slow the timed one). Ratios are within
one run. Then an ordinary stream (20,000 small events, whole or split in two per chunk), to
show the common path kept its cost. Prints Markdown and writes load/results/bench_sse_tap.json.

With --e2e, the same through the real stack (the code checked out: for a before figure, check
out function_app/ at --before first, then back): the local Functions host and
the real worker in front of tests/support/scripted_backend.py, which streams --streams events of
10 MB without a blank line at once; measured: /healthz latency before and during them (median,
max), the time until each stream ends with its error event, and the bytes each client received.
Writes load/results/bench_sse_tap_e2e.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEFORE_REV = "5948f3a"  # the last revision with the quadratic tap
MIB = 1024 * 1024


def old_tap_class(rev: str) -> type:
    """StreamTap as it was at `rev`, loaded as a module of its own."""
    source = subprocess.run(["git", "show", f"{rev}:function_app/openai/sse.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("sse_before", "the tap at " + rev)
    module.__package__ = "function_app.openai"
    exec(compile(source, f"{rev}:function_app/openai/sse.py", "exec"), module.__dict__)
    return module.StreamTap


def event_of(size: int) -> bytes:
    head = b'data: {"choices":[{"delta":{"content":"'
    return head + b"x" * (size - len(head) - 2) + b"\n\n"


def feed_all(make: Callable[[], object], event: bytes, chunk: int) -> str:
    """Feed `event` in `chunk` pieces; 'whole' if it came out whole, 'cut at N' if refused."""
    from function_app.core.errors import UpstreamError

    tap = make()
    out = 0
    try:
        for start in range(0, len(event), chunk):
            out += len(tap.feed(event[start:start + chunk]))
            check = getattr(tap, "check", None)
            if check is not None:
                check()
        out += len(tap.flush())
    except UpstreamError:  # UpstreamEventTooLarge (imported by name, --e2e runs old code too)
        return f"cut after {start + chunk} bytes"
    return "whole" if out == len(event) else f"{out} of {len(event)} bytes out"


def measure(make: Callable[[], object], event: bytes, chunk: int, repeat: int) -> dict:
    best, outcome = float("inf"), ""
    for _ in range(repeat):
        started = time.process_time()
        outcome = feed_all(make, event, chunk)
        best = min(best, time.process_time() - started)
    tracemalloc.start()
    feed_all(make, event, chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": round(best, 4), "peak_mib": round(peak / MIB, 2), "outcome": outcome}


def run(args: argparse.Namespace) -> dict:
    from function_app.openai import sse

    before = old_tap_class(args.before)
    cases = {
        "before": lambda: before(strip_usage_event=True),
        "after, no cap": lambda: sse.StreamTap(True, max_event_bytes=1 << 30),
        "after, default cap": lambda: sse.StreamTap(True),
    }
    results = {}
    for size_mb in args.sizes_mb:
        event = event_of(int(size_mb * MIB))
        results[str(size_mb)] = {name: measure(make, event, args.chunk, args.repeat)
                                 for name, make in cases.items()}
        row = results[str(size_mb)]
        row["speedup"] = round(row["before"]["seconds"] / row["after, no cap"]["seconds"], 1)
        print(f"measured {size_mb} MB", file=sys.stderr)
    results["ordinary_ms"] = ordinary(before, sse.StreamTap, max(args.repeat, 10))
    return results


def ordinary(before: type, after: type, repeat: int) -> dict:
    """An ordinary stream (20,000 small events, then usage and [DONE]) in one chunk per event
    and in two per event: the common path must not have slowed down. Best of `repeat`, ms."""
    event = (b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hello"},'
             b'"finish_reason":null}]}\n\n')
    usage = (b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,'
             b'"total_tokens":11}}\n\n')
    whole = [event] * 20000 + [usage, b"data: [DONE]\n\n"]
    halves = [half for chunk in whole for half in (chunk[:40], chunk[40:])]
    best: dict[str, float] = {}
    for _ in range(repeat):  # the cases interleaved, so a busy moment hits all of them
        for name, tap in (("before", before), ("after", after)):
            for label, chunks in (("one chunk per event", whole),
                                  ("two chunks per event", halves)):
                made, started = tap(True), time.process_time()
                for chunk in chunks:
                    made.feed(chunk)
                made.flush()
                spent = time.process_time() - started
                best[f"{name}, {label}"] = min(best.get(f"{name}, {label}", spent), spent)
    return {case: round(seconds * 1000, 1) for case, seconds in best.items()}


def markdown(results: dict, args: argparse.Namespace) -> str:
    lines = [f"chunks of {args.chunk} bytes, CPU time, best of {args.repeat}; peak = tracemalloc "
             "peak",
             "", "| event | before: time, peak | after (no cap): time, peak | before/after "
             "time | after (default 1 MiB cap): time, peak, outcome |", "|---|---|---|---:|---|"]
    for size, row in results.items():
        if size == "ordinary_ms":
            continue
        b, a, c = row["before"], row["after, no cap"], row["after, default cap"]
        lines.append(f"| {size} MB | {b['seconds']} s, {b['peak_mib']} MiB | {a['seconds']} s, "
                     f"{a['peak_mib']} MiB | {row['speedup']}x | {c['seconds']} s, "
                     f"{c['peak_mib']} MiB, {c['outcome']} |")
    lines += ["", "ordinary stream, 20,000 small events (ms): " + ", ".join(
        f"{name} {ms}" for name, ms in results["ordinary_ms"].items())]
    return "\n".join(lines)


@contextlib.contextmanager
def hostile_stack():
    """The scripted backend and a gateway (host + worker) routing model "hostile" to it."""
    from scripts.procs import PYTHON, free_port, spawn, spawn_host

    logs = Path(tempfile.mkdtemp(prefix="bench-sse-tap-"))
    port = free_port()
    backend = spawn("scripted", [PYTHON, "-m", "tests.support.scripted_backend", "--port",
                                 str(port)], port=port, log_dir=logs)
    try:
        gateway = spawn_host("gateway", port=free_port(), log_dir=logs, env={
            "PY_SERVICE_URL": backend.url, "NODE_SERVICE_URL": backend.url,
            "MODEL_ROUTES": json.dumps({"hostile": backend.url}), "RATE_LIMIT_ENABLED": "false",
            "UPSTREAM_TIMEOUT_S": "120", "HEALTH_CACHE_S": "0"})
        try:
            yield gateway.url
        finally:
            gateway.stop()
    finally:
        backend.stop()


async def hostile_stream(client, index: int) -> dict:
    """One stream whose only event is 10 MB without a blank line: how long until it ends, how
    many bytes reach the client, and whether it ended with the error event."""
    script = urlencode([("id", f"bench-{index}"), ("end", "clean"), ("fill", str(10 * MIB)),
                        ("header", "content-type:text/event-stream"),
                        ("chunk", 'data: {"choices": [{"delta": {"content": "')])
    body = {"model": "hostile", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    started = time.perf_counter()
    async with client.stream("POST", f"/v1/chat/completions?{script}", json=body) as response:
        data = b"".join([chunk async for chunk in response.aiter_raw()])
    return {"seconds": round(time.perf_counter() - started, 3), "bytes_to_client": len(data),
            "ended_with_error_event": b"upstream_event_too_large" in data[-300:]}


async def e2e(args: argparse.Namespace) -> dict:
    """/healthz latency idle and during --streams hostile streams, through host and worker."""
    import httpx

    def summary(samples: list[float]) -> dict:
        return {"median": round(statistics.median(samples), 1), "max": round(max(samples), 1),
                "samples": len(samples)}

    with hostile_stack() as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            async def health(samples: list[float]) -> None:
                started = time.perf_counter()
                assert (await client.get("/healthz")).status_code == 200
                samples.append((time.perf_counter() - started) * 1000)

            idle: list[float] = []
            for _ in range(20):
                await health(idle)
            busy: list[float] = []
            tasks = [asyncio.create_task(hostile_stream(client, i)) for i in range(args.streams)]
            while not all(task.done() for task in tasks):
                await health(busy)
                await asyncio.sleep(0.02)
    return {"healthz_idle_ms": summary(idle), "healthz_during_ms": summary(busy),
            "streams": [task.result() for task in tasks]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[1, 4, 10])
    parser.add_argument("--chunk", type=int, default=16384)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--before", default=BEFORE_REV)
    parser.add_argument("--e2e", action="store_true", help="through the host and the worker")
    parser.add_argument("--streams", type=int, default=2)
    args = parser.parse_args()
    if args.e2e:
        report = asyncio.run(e2e(args))
        out = ROOT / "load/results/bench_sse_tap_e2e.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        return
    results = run(args)
    out = ROOT / "load/results/bench_sse_tap.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"chunk": args.chunk, "results": results}, indent=2))
    print(markdown(results, args))


if __name__ == "__main__":
    main()
