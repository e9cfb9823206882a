"""Instructions per streamed chunk that the token bill's tap adds over a bare relay, counted by
valgrind (callgrind) in one process: the deterministic part of the gateway's CPU per chunk that
profile_streams.py --callgrind cannot attribute (it counts the whole worker).

    .venv/bin/python load/tap_instructions.py [--trees TREE ...] [--chunks 5000]
        [--per-stream 200]

For each tree (default: this one), three processes under callgrind with PYTHONHASHSEED=0 relay
--chunks chat completion chunks (the shape load/stream_sim.py sends: `"usage":null` in each),
in streams of --per-stream chunks, from an async generator: through a bare `async for ... yield`
(the ten-line function's relay), through the bill's tap (openai/tapped.py over sse.StreamTap,
set up per stream as settle_on_answer does, for a stream that asked for no usage) and through
nothing (the body read directly). Tap less bare, over --chunks, is the figure; bare less direct
is a generator's own cost per chunk, for scale.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from telemetry_instructions import callgrind_total  # noqa: E402

CHILD = r'''
import asyncio, os, sys
sys.path.insert(0, os.getcwd())
from function_app.openai.bill import OPENAI_WIRE, Bill, settle_on_answer
from function_app.openai.ledger import TokenLedger
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse

MODE, N, PER = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
CHUNK = (b'data: {"id":"chatcmpl-0123456789abcdef0123456789abcdef","object":'
         b'"chat.completion.chunk","created":1765000000,"model":"gpt-4o-mini","choices":'
         b'[{"index":0,"delta":{"content":"hello"},"logprobs":null,"finish_reason":null}],'
         b'"usage":null}\n\n')


async def upstream(n):
    for _ in range(n):
        yield CHUNK


async def relay(body):
    async for chunk in body:
        yield chunk


def tapped(n):
    bill = Bill(None, [], TokenLedger(), "client", "model", 100, prompt_tokens=10)
    response = GatewayResponse(200, Headers([("content-type", "text/event-stream")]),
                               upstream(n))
    return settle_on_answer(response, bill, True, True, OPENAI_WIRE).body


async def run():
    make = {"tap": tapped, "bare": lambda n: relay(upstream(n)), "direct": upstream}[MODE]
    async for _ in make(200):  # warm-up
        pass
    for start in range(0, N, PER):  # streams of PER chunks each
        async for _ in make(min(PER, N - start)):
            pass

asyncio.run(run())
'''


def instructions(tree: str, mode: str, chunks: int, per_stream: int, script: str) -> int:
    return callgrind_total([script, mode, str(chunks), str(per_stream)], tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", default=[str(HERE.parents[1])])
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--per-stream", type=int, default=200,
                        help="chunks per stream (200: a 20 s stream of 100 ms chunks, 47 KB)")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CHILD)
    try:
        print(f"instructions per chunk (callgrind, {args.chunks} chunks in streams of "
              f"{args.per_stream}; a run of zero chunks cancels out start-up):")
        for tree in args.trees:
            counts = {mode: instructions(tree, mode, args.chunks, args.per_stream, f.name)
                      - instructions(tree, mode, 0, args.per_stream, f.name)
                      for mode in ("tap", "bare", "direct")}
            per = {mode: count / args.chunks for mode, count in counts.items()}
            print(f"  {tree}: tap {per['tap']:,.0f}, bare relay {per['bare']:,.0f}, "
                  f"direct {per['direct']:,.0f}; the tap over the bare relay "
                  f"{per['tap'] - per['bare']:,.0f}")
    finally:
        os.unlink(f.name)


if __name__ == "__main__":
    main()
