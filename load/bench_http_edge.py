"""CPU of the worker's HTTP edge for one unary request, for two or more revisions side by side:
the worker's FastAPI app (as the Functions extension builds it, hardened by worker_http.py), the
worker library's coordinator hand-over, and app.py's conversions, with no pipeline between them.

    .venv/bin/python load/bench_http_edge.py [--rev main --rev HEAD] [--rounds 10]
        [--requests 4000]

Per request, in one process per revision and round (rounds interleaved, order reversed every
other round, a fresh process each time): an ASGI POST with the fields funchost/front.py
forwards goes through the app's middleware stack and router to a catch-all route that does what
the library's does (set the request, wait for the answer) while a task does what the
invocation does (take the request, call app.py's `to_gateway_request`, read the body, check
its JSON as the body stage does, make the upstream fields and the client's answer fields as the
upstream step does, `to_response`, set the answer); the response is sent to a `send` that keeps
nothing. Each revision is its `git archive` (HEAD's too). CPU is process time with garbage
collection off, per request, of the fastest batch of 50 in the round (other processes' load on a
shared machine only adds time); then each revision's minimum and median over the rounds, and
the median of the per-round differences. First, once per revision, the calls per request
under cProfile (deterministic).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.procs import export_tree  # noqa: E402

RUNNER = r'''
import asyncio, gc, sys, time, uuid
from azure_functions_runtime import http_v2  # loaded before the app, as the worker loads it
import function_app.app as edge
from azurefunctions.extensions.http.fastapi import web
from function_app.core.json_object import check_json_object
from function_app.http.forwarding import client_response_headers, upstream_request_headers
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse

BODY = b'{"prompt": "benchmark", "max_tokens": 16}'
FIELDS = [(b"host", b"127.0.0.1:43901"), (b"content-type", b"application/json"),
          (b"x-forwarded-for", b"127.0.0.1"), (b"x-forwarded-proto", b"http"),
          (b"x-forwarded-host", b"127.0.0.1:43901"), (b"content-length", b"%d" % len(BODY))]
ANSWER = [(b"Content-Type", b"application/json; charset=utf-8"), (b"Content-Length", b"62"),
          (b"X-Powered-By", b"Express"), (b"ETag", b'W/"3e-abc"'),
          (b"Date", b"Sun, 06 Dec 2026 19:15:01 GMT"), (b"Connection", b"keep-alive"),
          (b"Keep-Alive", b"timeout=75")]
ADDED = {"ratelimit-policy": ('"global";q=1000000;w=1',), "ratelimit": ('"global";r=999999;t=1',),
         "x-ratelimit-limit-requests": ("1000000",), "x-ratelimit-remaining-requests": ("999999",),
         "x-ratelimit-reset-requests": ("1s",)}
UPSTREAM_BODY = b'{"ok": true, "echo": "/infer", "usage": {"total_tokens": 3}}' + b" " * 2
coordinator = http_v2.HttpCoordinator()

async def invocation(invocation_id):
    req = await coordinator.get_http_request_async(invocation_id)
    request = edge.to_gateway_request(req)
    body = await request.body.read(1 << 20)
    check_json_object(body)
    upstream_request_headers(request.headers, client_host=request.client_host,
                             scheme=request.scheme, host=request.headers.get("host"),
                             request_id="0123456789abcdef0123456789abcdef")
    headers = client_response_headers(Headers.from_raw(ANSWER))
    headers.update_fields(ADDED)
    headers.set("X-Request-ID", "0123456789abcdef0123456789abcdef")
    coordinator.set_http_response(invocation_id, edge.to_response(
        GatewayResponse(200, headers, UPSTREAM_BODY)))

app = web.WebApp()
async def catch_all(request: web.FastApiRequest):
    invocation_id = request.headers.get("x-ms-invocation-id")
    coordinator.set_http_request(invocation_id, request)
    return await coordinator.await_http_response_async(invocation_id)
app.route(catch_all)
asgi = app.get_app()

async def one(n):
    invocation_id = f"{n:032x}"
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "POST", "path": "/api/infer/node",
             "raw_path": b"/api/infer/node", "query_string": b"", "root_path": "",
             "headers": FIELDS + [(b"x-ms-invocation-id", invocation_id.encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 7071), "scheme": "http"}
    async def receive():
        return {"type": "http.request", "body": BODY, "more_body": False}
    async def send(message):
        pass
    task = asyncio.ensure_future(invocation(invocation_id))
    await asgi(scope, receive, send)
    await task

async def main(n):
    for k in range(300):  # warm-up: the stack is built at the first request
        await one(k)
    gc.collect()
    gc.disable()
    if len(sys.argv) > 2:  # calls: every Python and C call, each code object on its own
        import cProfile
        profile = cProfile.Profile()
        profile.enable()
        for k in range(n):
            await one(1000 + k)
        profile.disable()
        print(sum(entry.callcount for entry in profile.getstats()) / n)
        return
    batches = []
    for b in range(n // 50):  # the fastest batch: other processes' load only ever adds time
        began = time.process_time()
        for k in range(50):
            await one(1000 + 50 * b + k)
        batches.append((time.process_time() - began) / 50 * 1e6)
    print(min(batches))

asyncio.run(main(int(sys.argv[1])))
'''


def timed(tree: Path, requests: int, calls: bool = False) -> float:
    out = subprocess.run([sys.executable, "-c", RUNNER, str(requests), *(["calls"] * calls)],
                         cwd=tree, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", action="append", help="git revisions (default: main, HEAD)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=4000, help="per round")
    args = parser.parse_args()
    revs = args.rev or ["main", "HEAD"]
    with tempfile.TemporaryDirectory() as folder:
        trees = {}
        for n, rev in enumerate(revs):
            (Path(folder) / str(n)).mkdir()
            trees[rev] = export_tree(rev, Path(folder) / str(n))
        calls = {rev: timed(trees[rev], 1000, calls=True) for rev in revs}
        got: dict[str, list[float]] = {rev: [] for rev in revs}
        for k in range(args.rounds):
            for rev in (revs if k % 2 == 0 else revs[::-1]):
                got[rev].append(timed(trees[rev], args.requests))
    print("worker HTTP edge, calls per request (cProfile, every code object counted on its own: "
          "pstats would fold the dataclass __init__s into one row): "
          + ", ".join(f"{rev} {n:.1f}" for rev, n in calls.items()))
    print(f"worker HTTP edge, us of CPU per request ({args.rounds} rounds x {args.requests}):")
    for rev, values in got.items():
        print(f"  {rev:>12}: min {min(values):7.2f}  median {statistics.median(values):7.2f}  "
              f"rounds {', '.join(f'{v:.1f}' for v in values)}")
    first = revs[0]
    for rev in revs[1:]:
        deltas = [b - a for a, b in zip(got[first], got[rev], strict=True)]
        lower = sum(d < 0 for d in deltas)
        print(f"  {rev} - {first}: median {statistics.median(deltas):+.2f} us per request, "
              f"lower in {lower} of {len(deltas)} rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
