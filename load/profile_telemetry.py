"""Best-of-7 process CPU per call of the telemetry pieces, for the tree in the current directory:
the request log's write (through the local worker's log handler, funchost/worklog.py, writing to
/dev/null), one request's id-only span work (request span, attempt observer, trace ids), and one
whole unary request's telemetry as the gateway runs it with the defaults (the telemetry stage,
one attempt through its observer, the metrics, the id-only spans, the request-log line).

    .venv/bin/python load/profile_telemetry.py
    .venv/bin/python load/profile_telemetry.py --trees /tmp/base . --rounds 5

With --trees, each round runs this script once in each tree (a subprocess whose current
directory is that tree, this tree's .venv), the order reversed every other round, and prints
each piece's figures per tree: interleaved, so the machine's load falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import timeit

NUMBER = 20000


def pieces() -> dict[str, float]:
    """us of CPU per call of each piece, best of 7, for the tree in the current directory."""
    sys.path.insert(0, os.getcwd())  # the tree measured is the current directory's
    from funchost import worklog
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayRequest
    from function_app.telemetry.ids import IdOnlyTracer
    from function_app.telemetry.request_log import RequestLog, RequestRecord
    from function_app.telemetry.tracing import attempt_observer, start_request_span, trace_ids

    handler = worklog.install()
    handler.stream = open(os.devnull, "w")
    log = RequestLog()
    record = RequestRecord(request_id="r-1", trace_id="0af7651916cd43dd8448eb211c80319c",
                           method="POST", route="/infer/node", backend="node", model="-",
                           status=200, latency_ms=1.2345, client="c0ffee")
    tracer = IdOnlyTracer()
    request = GatewayRequest(method="POST", path="/infer/node", query="",
                             headers=Headers([("content-type", "application/json")]), body=b"",
                             client_host="127.0.0.1")

    def spans() -> None:
        span = start_request_span(tracer, request)
        attempt_observer(tracer, span, lambda url: "node", lambda *args: None)
        trace_ids(span)

    figures = {}
    for name, fn in (("request log write", lambda: log.write(record)),
                     ("request span + attempt observer + trace ids", spans)):
        figures[name] = _best(fn)
    figures["a unary request's telemetry (stage, attempt, metrics, log line)"] = whole_request()
    return figures


def _best(fn) -> float:
    return min(timeit.repeat(fn, number=NUMBER, repeat=7, timer=time.process_time)) / NUMBER * 1e6


def whole_request(log: str = "handler") -> float:
    """The telemetry stage around one POST /infer/node with limits on (`unary_setup`). The
    figure is the run's CPU less that of the same run with a stage that only passes the
    attempt through (no telemetry). `log`: as `unary_setup`'s."""
    stage, bare, call_next, new_request = unary_setup(log)

    async def run(through, n: int) -> float:
        began = time.process_time()
        for _ in range(n):
            await through(new_request(), call_next)
        return time.process_time() - began

    async def rounds() -> float:
        await run(stage, 200)
        with_telemetry = min([await run(stage, NUMBER) for _ in range(7)])
        without = min([await run(bare, NUMBER) for _ in range(7)])
        return (with_telemetry - without) / NUMBER * 1e6

    return asyncio.run(rounds())


def unary_setup(log: str = "handler"):
    """(telemetry stage, pass-through stage, next handler, request maker) of the tree in the
    current directory, for one unary request as the gateway runs it with the defaults: a
    routing step that sets the route match, the client and the request decision, then one
    attempt through the observer to an answer with a Content-Length. The same objects each
    time except the request and its context, which the gateway makes per request. The
    pass-through stage only hands the attempt on (no telemetry). `log`: "handler" (the line
    through logging to the handler), "line" (the line made and not written: this tree's
    RequestLog.write_line replaced; a tree whose finish calls write_request has it replaced
    by one that makes the line with request_line) or "none" (no request log).
    load/telemetry_instructions.py runs the same set-up under valgrind."""
    sys.path.insert(0, os.getcwd())  # the tree measured is the current directory's
    from function_app.core.upstream import UpstreamRequest, UpstreamResponse
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayRequest, GatewayResponse
    from function_app.ratelimit.limits import REQUESTS_DECISION
    from function_app.routing.attempts import ATTEMPT_OBSERVER
    from function_app.routing.routes import MATCH, Match, Route
    from function_app.telemetry.ids import IdOnlyTracer
    from function_app.telemetry.labels import BoundedNames, ClientLabels
    from function_app.telemetry.metrics import GatewayMetrics
    from function_app.telemetry.observe import Telemetry
    from function_app.telemetry.request_log import RequestLog

    url = "http://127.0.0.1:41234/infer/node"
    request_log = RequestLog() if log != "none" else None
    if log == "line":
        request_log.write_line = lambda line: None
        if hasattr(request_log, "write_request"):
            from function_app.telemetry.request_log import request_line

            def made_only(request_id, trace, method, route, backend, model, status,
                          seconds, client, optional=None) -> None:
                # trace: the id's text (this tree), or a number or None (before pass 14)
                text = trace if isinstance(trace, str) else "" if trace is None \
                    else "%032x" % trace  # noqa: UP031
                request_line(request_id, text, method, route, backend, model, status,
                             round(seconds * 1000, 2), client, optional)

            request_log.write_request = made_only
    telemetry = Telemetry(tracer=IdOnlyTracer(), metrics=GatewayMetrics({}, "i"),
                          clients=ClientLabels("key", 200), models=BoundedNames(()),
                          backend_urls={"http://127.0.0.1:41234": "node"}, log=request_log)
    from function_app.telemetry.stage import telemetry_stage

    stage = telemetry_stage(telemetry)
    match = Match(Route("/infer/node", frozenset({"POST"}), "node", "/infer/node", 30.0, False),
                  "/infer/node")
    decision = _decision()
    answer_headers = Headers([("content-type", "application/json"), ("content-length", "62")])

    async def send(outgoing: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, answer_headers, _empty())

    async def call_next(request: GatewayRequest) -> GatewayResponse:
        ctx = request.context
        MATCH.set(ctx, match)
        ctx.client_id = "127.0.0.1"
        REQUESTS_DECISION.set(ctx, decision)
        outgoing = UpstreamRequest("POST", url, Headers([("content-type", "application/json")]),
                                   b"{}", 5.0, 30.0)
        answer = await ATTEMPT_OBSERVER.need(ctx)(outgoing, send)
        ctx.served_by = "node"
        return GatewayResponse(answer.status, answer.headers, b"{}")

    async def passing(outgoing: UpstreamRequest, send_on) -> UpstreamResponse:
        return await send_on(outgoing)

    async def bare(request: GatewayRequest, then) -> GatewayResponse:
        ATTEMPT_OBSERVER.set(request.context, passing)
        return await then(request)

    def new_request() -> GatewayRequest:
        return GatewayRequest(method="POST", path="/infer/node", query="",
                              headers=Headers([("content-type", "application/json")]),
                              body=b"{}", client_host="127.0.0.1", request_id="r-1")

    return stage, bare, call_next, new_request


async def _empty():
    yield b"{}"


def _decision():
    from function_app.ratelimit.limits import Decision

    return Decision(allowed=True, scope="global", remaining=999999, reset_s=1.0)


def compare(trees: list[str], rounds: int) -> None:
    figures: dict[str, dict[str, list[float]]] = {tree: {} for tree in trees}
    for n in range(rounds):
        for tree in trees if n % 2 == 0 else reversed(trees):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--json"],
                                 cwd=tree, check=True, capture_output=True, text=True).stdout
            for name, us in json.loads(out).items():
                figures[tree].setdefault(name, []).append(us)
    print(f"us of CPU per call, best of 7 x {NUMBER} calls per round, {rounds} rounds "
          f"interleaved (min / median of the rounds); load average {os.getloadavg()[0]:.1f}")
    for name in figures[trees[0]]:
        print(f"  {name}:")
        for tree in trees:
            values = figures[tree][name]
            print(f"    {tree:>24}: {min(values):6.2f} / {statistics.median(values):6.2f}")


def split() -> None:
    sys.path.insert(0, os.getcwd())
    from funchost import worklog

    worklog.install().stream = open(os.devnull, "w")
    print(f"a unary request's telemetry, us of CPU (best of 7 x {NUMBER}); load average "
          f"{os.getloadavg()[0]:.1f}")
    for log, name in (("none", "without the request log"), ("line", "the line made, not written"),
                      ("handler", "the line written through logging to the local handler")):
        print(f"  {name}: {whole_request(log):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", nargs="+", help="trees to compare, rounds interleaved")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--split", action="store_true",
                        help="this tree only: a unary request's telemetry without the request "
                        "log, with the line made but not written, and written")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trees:
        compare(args.trees, args.rounds)
        return
    if args.split:
        split()
        return
    gc.collect()
    figures = pieces()
    if args.json:
        print(json.dumps(figures))
    else:
        for name, us in figures.items():
            print(f"{name}: {us:.2f} us")


if __name__ == "__main__":
    main()
