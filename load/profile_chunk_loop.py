"""Function calls and CPU per streamed chunk inside the worker's app, with an in-memory upstream.

    .venv/bin/python load/profile_chunk_loop.py [--streams 200] [--chunks 100] [--top 25]

The gateway is built with the defaults (telemetry, cache, token and request limits in memory,
far from binding) and `tests/support/upstream_memory.py` as its backend, which answers each streamed
chat completion with --chunks OpenAI chunk events, one per upstream chunk, then the usage event
and `data: [DONE]`. Each stream goes through the registered HTTP function (`app.proxy`) and the
FastAPI response it returns (`ClosingStreamingResponse`, run as the worker's server runs it,
with a `send` that keeps nothing). cProfile counts every Python call: calls per chunk are exact
and do not depend on the machine's load, CPU per chunk (process time) roughly so. Opening a
stream is measured apart (streams of 1 chunk) and taken out of the per-chunk figure. What it
leaves out: the worker's HTTP server and the upstream client's sockets (load/profile_streams.py
measures those through the real host and worker).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from function_app import app as app_module  # noqa: E402
from function_app.settings.load import load_settings  # noqa: E402
from function_app.wiring.build import build_gateway  # noqa: E402
from tests.support.handler_calls import make_request  # noqa: E402
from tests.support.upstream_memory import MemoryUpstream, Reply  # noqa: E402

MODEL = "sim-stream"
SETTINGS = {"MODEL_ROUTES": json.dumps({MODEL: "http://127.0.0.1:9"}), "CLIENT_TPM": "1e9",
            "MODEL_TPM": "1e9", "GLOBAL_RPS": "1000000", "GLOBAL_BURST": "1000000",
            "CLIENT_RPS": "1000000", "CLIENT_BURST": "1000000"}


def event(k: int) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
             "model": MODEL, "choices": [{"index": 0, "delta": {"content": f"tok{k} "},
                                          "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def reply(chunks: int) -> Reply:
    usage = {"prompt_tokens": 5, "completion_tokens": chunks, "total_tokens": chunks + 5}
    pieces = [event(k) for k in range(chunks)]
    pieces.append(b'data: {"choices":[],"usage":' + json.dumps(usage).encode() + b"}\n\n")
    pieces.append(b"data: [DONE]\n\n")

    async def body():
        for piece in pieces:
            await asyncio.sleep(0)  # one loop turn per upstream chunk, as from a socket
            yield piece

    return Reply(200, [("content-type", "text/event-stream")], body())


async def one_stream(chunks: int) -> int:
    body = json.dumps({"model": MODEL, "stream": True, "max_tokens": chunks,
                       "messages": [{"role": "user", "content": "Hold the line."}]}).encode()
    response = await app_module.proxy(make_request(
        "POST", "/v1/chat/completions", body, {"content-type": "application/json"}))
    sent = 0

    async def receive():
        await asyncio.Event().wait()  # the client never leaves

    async def send(message):
        nonlocal sent
        sent += message["type"] == "http.response.body" and bool(message.get("body"))

    await response(response_scope(), receive, send)
    return sent


def response_scope() -> dict:
    return {"type": "http", "http_version": "1.1", "method": "POST", "headers": [],
            "extensions": {}}


async def run(streams: int, chunks: int, profile: cProfile.Profile | None) -> tuple[float, int]:
    """CPU seconds for `streams` concurrent streams of `chunks` chunks, and chunks sent."""
    cpu = time.process_time()
    if profile is not None:
        profile.enable()
    sent = await asyncio.gather(*(one_stream(chunks) for _ in range(streams)))
    if profile is not None:
        profile.disable()
    return time.process_time() - cpu, sum(sent)


def calls(profile: cProfile.Profile) -> int:
    return sum(row[1] for row in pstats.Stats(profile).stats.values())


async def main_async(args) -> None:
    upstream = MemoryUpstream(lambda request: reply(json.loads(request.body)["max_tokens"]))
    gateway = await build_gateway(load_settings(SETTINGS), upstream=upstream)
    app_module.gateway.install(gateway)
    try:
        await run(20, 5, None)  # warm-up: caches, first imports
        short, long = cProfile.Profile(), cProfile.Profile()
        _, open_sent = await run(args.streams, 1, short)
        _, sent = await run(args.streams, args.chunks, long)
        opens, fulls = [], []
        for _ in range(args.repeat):  # CPU without the profiler: best of --repeat
            opens.append((await run(args.streams, 1, None))[0])
            fulls.append((await run(args.streams, args.chunks, None))[0])
    finally:
        await app_module.gateway.aclose()
    extra = sent - open_sent
    print(f"{args.streams} streams x {args.chunks} chunks ({sent} body sends)")
    print(f"calls per stream open (1 chunk): {calls(short) / args.streams:.0f}")
    print(f"calls per further chunk: {(calls(long) - calls(short)) / extra:.1f}")
    print(f"CPU per stream open: {min(opens) / args.streams * 1e6:.0f} µs")
    print(f"CPU per further chunk: {(min(fulls) - min(opens)) / extra * 1e6:.1f} µs")
    stats = pstats.Stats(long)
    stats.sort_stats("tottime").print_stats(args.top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
