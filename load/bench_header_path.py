"""CPU of one proxied request's header work, for several revisions of http/ side by side, and of
the upstream adapter's per-request pieces: the evidence that a change which cuts Python calls
also cuts CPU (a C call such as str.encode costs ~0.1 us; keeping its result in Python can cost
more; docs/perf/pass7-bytes.md).

    .venv/bin/python load/bench_header_path.py [--rev 00d80c5 --rev HEAD ...] [--rounds 15]

Each revision's function_app/http/headers.py and forwarding.py (and ratelimit's `Fields`, where
that revision has it) are loaded from git into a package of their own; the same request and
answer go through each (the steps app.py, the stages, routing and the upstream take, in order),
rounds interleaved, CPU time (process time, garbage collection off) per request: the minimum and
the median of the rounds. Then the adapter pieces of this tree, each beside what it replaced.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# What the local worker's server hands the app for wrk's POST (funchost/front.py's forwarding).
REQUEST = [(b"host", b"127.0.0.1:43901"), (b"content-type", b"application/json"),
           (b"x-forwarded-for", b"127.0.0.1"), (b"x-forwarded-proto", b"http"),
           (b"x-forwarded-host", b"127.0.0.1:43901"),
           (b"x-ms-invocation-id", b"a4e089e6-46df-4e52-823c-38c49e182459"),
           (b"content-length", b"23")]
# What the Node simulator answers.
ANSWER = [(b"Content-Type", b"application/json; charset=utf-8"), (b"Content-Length", b"62"),
          (b"Date", b"Sun, 06 Dec 2026 19:15:01 GMT"), (b"Connection", b"keep-alive"),
          (b"Keep-Alive", b"timeout=75")]
LIMIT_FIELDS = [("RateLimit-Policy", '"global";q=1000000;w=1'),
                ("RateLimit", '"global";r=999999;t=1'), ("RateLimit-Scope", "global"),
                ("X-RateLimit-Limit", "1000000"), ("X-RateLimit-Remaining", "999999"),
                ("X-RateLimit-Reset", "1")]
REQUEST_ID = "0123456789abcdef0123456789abcdef"
TRACEPARENT = "00-" + "1" * 32 + "-" + "2" * 16 + "-00"


def load(rev: str, into: Path):
    """(headers module, forwarding module) of `rev`, as a package named after it."""
    name = "hp_" + "".join(c if c.isalnum() else "_" for c in rev)
    package = into / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for file in ("headers.py", "forwarding.py"):
        text = subprocess.run(["git", "show", f"{rev}:function_app/http/{file}"], cwd=ROOT,
                              check=True, capture_output=True, text=True).stdout
        (package / file).write_text(text)
    return (importlib.import_module(f"{name}.headers"),
            importlib.import_module(f"{name}.forwarding"))


def one_request(headers_module, forwarding, limit_fields) -> None:
    """The header steps of one proxied POST with limits on, in the order the gateway takes."""
    request = headers_module.Headers.from_raw(REQUEST)  # app.to_gateway_request
    request.get("x-request-id")  # request id stage
    request.get("traceparent")  # telemetry stage
    request.get("tracestate")
    request.remove(*forwarding.FORWARDED_FOR)  # forwarded stage (an untrusted peer)
    request.get_all("x-forwarded-for")  # identity stage
    request.get("content-length")  # body stage
    out = forwarding.upstream_request_headers(request, client_host="127.0.0.1", scheme="http",
                                              host=request.get("host"), request_id=REQUEST_ID)
    if "accept-encoding" not in request:  # routing's exchange
        out.set("accept-encoding", "identity")
    out.remove("traceparent", "tracestate")  # the attempt's trace headers
    out.set("traceparent", TRACEPARENT)
    out.raw()  # the outgoing httpx request
    answer = headers_module.Headers.from_raw(ANSWER)  # the upstream's answer
    answer.get("content-length")
    shown = forwarding.client_response_headers(answer)  # routing's respond
    shown.add("X-Gateway-Backend", "node")
    shown.update_fields(limit_fields)  # rate-limit stage
    shown.set("X-Request-ID", REQUEST_ID)  # request id stage
    if "content-length" in shown:  # app.to_response
        shown = shown.without(("content-length",))
    shown.raw()


def per_request_us(run, rounds: int, n: int) -> list[float]:
    return [_timed(run, n) for _ in range(rounds)]


def _timed(run, n: int) -> float:
    began = time.process_time()
    for _ in range(n):
        run()
    return (time.process_time() - began) / n * 1e6


def revisions(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        sys.path.insert(0, folder)
        runs = {}
        for rev in args.rev:
            headers_module, forwarding = load(rev, Path(folder))
            fields_type = getattr(headers_module, "Fields", None)
            fields = fields_type.of(LIMIT_FIELDS) if fields_type is not None \
                else {k.lower(): (v,) for k, v in LIMIT_FIELDS}
            runs[rev] = (lambda h=headers_module, f=forwarding, x=fields: one_request(h, f, x))
        figures: dict[str, list[float]] = {rev: [] for rev in runs}
        for n in range(args.rounds):  # interleaved, order reversed every other round
            for rev in (args.rev if n % 2 == 0 else reversed(args.rev)):
                figures[rev].append(_timed(runs[rev], args.requests))
    print(f"header work of one proxied request (limits on), {args.requests} x {args.rounds} "
          "rounds interleaved, us of CPU per request:")
    for rev, values in figures.items():
        print(f"  {rev:>12}: min {min(values):6.2f}  median {statistics.median(values):6.2f}")


def pieces(args: argparse.Namespace) -> None:
    """The adapter's per-request pieces in this tree, each beside what it replaced."""
    from function_app.adapters.aiohttp_transport import aiohttp_headers
    from function_app.adapters.httpx_upstream import WireHeaders
    from function_app.http.headers import Headers

    url = httpx.URL("http://127.0.0.1:41234/infer/node")
    text = str(url)
    sent = httpx.Request("POST", url, content=b"{}")
    made = Headers.from_raw([*REQUEST[1:2], *REQUEST[5:6]])
    made.set_all([("x-forwarded-for", "127.0.0.1"), ("x-request-id", REQUEST_ID)])
    wire = WireHeaders([(b"Host", b"127.0.0.1:41234"), *made.raw(), (b"Content-Length", b"2")])

    def plain_dict():  # pass 7's tried-and-dropped replacement for aiohttp_headers
        pairs = [(k, v) for k, vs in made._fields.items() for v in vs]
        plain = dict(pairs) if len(pairs) == len(made._fields) else None
        if plain is not None and "".join([*plain, *plain.values()]).isascii():
            return {"host": "127.0.0.1:41234", **plain, "content-length": "2"}
        return None

    def stream_request():
        return httpx.Request("POST", url, stream=httpx.ByteStream(b"{}"))

    def set_content():
        stream_request()._content = b"{}"

    rows = [("str(request.url)", lambda: str(sent.url), "the URL's text made once", lambda: text),
            ("Request.read()", lambda: stream_request().read(), "_content set", set_content),
            ("aiohttp_headers", lambda: aiohttp_headers(wire), "plain dict (dropped)",
             plain_dict)]
    print("adapter pieces, us of CPU per call (min of rounds):")
    for before, old, after, new in rows:
        old_us = min(per_request_us(old, args.rounds, args.requests))
        new_us = min(per_request_us(new, args.rounds, args.requests))
        print(f"  {before:>18} {old_us:6.2f}  ->  {after:<26} {new_us:6.2f}")
    body_read(args)


def body_read(args: argparse.Namespace) -> None:
    """app.py's body read through Starlette's `stream()` (an async generator) beside reading
    the ASGI messages directly: measured, not done (it would copy Starlette's stream logic and
    private flags into app.py)."""
    import asyncio

    from starlette.requests import Request

    scope = {"type": "http", "method": "POST", "path": "/infer/node", "headers": [],
             "query_string": b""}

    async def receive() -> dict:
        return {"type": "http.request", "body": b'{"prompt": "benchmark"}', "more_body": False}

    async def streamed(req: Request) -> bytes:
        chunks = [chunk async for chunk in req.stream()]
        return b"".join(chunks)

    async def direct(req: Request) -> bytes:
        chunks = []
        while True:
            message = await req.receive()
            if message["type"] == "http.request":
                if message.get("body"):
                    chunks.append(message["body"])
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def timed(read) -> float:
        began = time.process_time()
        for _ in range(args.requests):
            await read(Request(scope, receive))
        return (time.process_time() - began) / args.requests * 1e6

    async def rounds() -> tuple[float, float]:
        a = [await timed(streamed) for _ in range(args.rounds)]
        b = [await timed(direct) for _ in range(args.rounds)]
        return min(a), min(b)

    a, b = asyncio.run(rounds())
    print(f"  {'body via stream()':>18} {a:6.2f}  ->  {'ASGI messages (not done)':<26} {b:6.2f}"
          "  (Request built in both)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", action="append", help="git revisions (default: 00d80c5, HEAD)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=20000, help="per round")
    args = parser.parse_args()
    args.rev = args.rev or ["00d80c5", "HEAD"]
    gc.disable()  # a collection landing in one round says nothing about the code
    revisions(args)
    pieces(args)


if __name__ == "__main__":
    main()
