"""CPU of the httpx objects one proxied exchange makes in the upstream adapter, for several
checkouts side by side: the outgoing request with what the lean aiohttp transport hands aiohttp
as its header fields, and the answer with the gateway's Headers made from its byte pairs.

    .venv/bin/python load/bench_upstream_objects.py --tree /tmp/base --tree . [--rounds 15]

Each tree's own function_app is imported in a process of its own (its adapters import the rest
of the package, so they cannot share one process); the parent runs the trees' rounds
interleaved, order reversed every other round, and prints process time per exchange (garbage
collection off): the minimum and the median of the rounds. A tree whose adapter has no
STR_FIELDS or incoming_response (before docs/perf/pass9-unary.md) takes the path it had then:
`outgoing_request` + `aiohttp_headers(request.headers)`, `httpx.Response(...,
headers=WireHeaders(raw))` + `Headers.from_raw(response.headers.raw)`.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# What the upstream sends for wrk's POST after the forwarding rules (bench_header_path.py's
# request through upstream_request_headers and the trace hook), and what the Node simulator
# answers (aiohttp's raw_headers).
SENT = [("content-type", "application/json"),
        ("x-ms-invocation-id", "a4e089e6-46df-4e52-823c-38c49e182459"),
        ("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http"),
        ("x-request-id", "0123456789abcdef0123456789abcdef"),
        ("x-forwarded-host", "127.0.0.1:43901"), ("accept-encoding", "identity"),
        ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-00")]
ANSWER = ((b"Content-Type", b"application/json; charset=utf-8"), (b"Content-Length", b"62"),
          (b"Date", b"Sun, 06 Dec 2026 19:15:01 GMT"), (b"Connection", b"keep-alive"),
          (b"Keep-Alive", b"timeout=75"))
BODY = b'{"prompt": "benchmark"}'


def exchange():
    """One exchange's object work in this process's function_app (a tree's own path)."""
    import httpx

    from function_app.adapters import aiohttp_transport, httpx_upstream
    from function_app.http.headers import Headers

    upstream = httpx_upstream.HttpxUpstream(aiohttp_transport.LeanAiohttpTransport())
    url, host, _ = upstream._url("http://127.0.0.1:41234/infer/node")
    headers = Headers(SENT)
    try:
        from function_app.adapters import httpx_messages as messages
    except ImportError:  # a tree before pass 9
        messages = None
    stream = httpx.ByteStream(b"")

    def extensions():
        return {"timeout": {"connect": 2.0, "read": None, "write": 30.0, "pool": 2.0}}

    if messages is None:  # the path before pass 9
        wire = httpx_upstream.WireHeaders

        def one():
            request = httpx_upstream.outgoing_request("POST", url, headers, BODY, extensions(),
                                                      host)
            handed = aiohttp_transport.aiohttp_headers(request.headers)
            answer = httpx.Response(status_code=200, headers=wire(ANSWER), stream=stream,
                                    request=request, extensions={"http_version": b"HTTP/1.1"})
            return handed, Headers.from_raw(answer.headers.raw)
    else:
        def one():
            sent = extensions()
            request = messages.outgoing_request("POST", url, headers, BODY, sent, host, True)
            handed = sent[messages.STR_FIELDS]  # what the transport hands aiohttp
            answer = messages.incoming_response(200, ANSWER, stream, request,
                                                {"http_version": b"HTTP/1.1"})
            try:
                raw = answer.headers._raw
            except AttributeError:
                raw = answer.headers.raw
            return handed, Headers.from_raw(raw)
    return one


def child(requests: int) -> None:
    one = exchange()
    for _ in range(1000):
        one()
    gc.disable()
    started = time.process_time()
    for _ in range(requests):
        one()
    print((time.process_time() - started) * 1e6 / requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="a checkout's root")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.requests)
        return
    trees = [str(Path(t).resolve()) for t in args.tree]
    figures: dict[str, list[float]] = {t: [] for t in trees}
    for n in range(args.rounds):
        for tree in (trees if n % 2 == 0 else reversed(trees)):
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--tree", tree,
                 "--requests", str(args.requests)], cwd=tree, check=True, capture_output=True,
                text=True, env={**os.environ, "PYTHONPATH": tree}).stdout
            figures[tree].append(float(out))
    print(f"upstream objects of one exchange, {args.requests} x {args.rounds} rounds "
          f"interleaved, us of CPU per exchange (load average {os.getloadavg()[0]:.1f}):")
    for tree, values in figures.items():
        print(f"  {tree}: min {min(values):6.2f}  median {statistics.median(values):6.2f}")


if __name__ == "__main__":
    main()
