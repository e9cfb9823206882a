"""What the local host's Python spends on one unary answer's head, by answer shape: the host's
own code (funchost/workerhttp.py's response parser callbacks, front.py's header filter) and its
server's (uvicorn's `send` of the head and the body to the client), on fixed answer heads, in
this process, with no sockets (a transport that only counts what it is given).

    .venv/bin/python load/host_answer_cost.py [--repeat 5000] [--trials 15]

The heads are the ones the host received from the worker (captured with strace on the host,
docs/perf/pass10-host.md): the ten-line function's (2 fields besides date and server), the
gateway's with limits off (+ x-gateway-backend, x-request-id) and with limits on (+ six
RateLimit / x-ratelimit fields). Prints the fastest of --trials timings of --repeat answers
(the one least disturbed by other processes on a shared machine), microseconds per answer,
and the cost per extra header field against the ten-line head; then
the host's route match of POST /infer/node against the gateway's seven HTTP functions and the
ten-line function's one. Figures for these code paths on this machine, not the host's whole
CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from uvicorn.protocols.http.flow_control import FlowControl  # noqa: E402
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle  # noqa: E402

from funchost.front import _answer_headers  # noqa: E402
from funchost.routes import HttpFunction, build_table, match  # noqa: E402
from funchost.workerhttp import _Connection  # noqa: E402

BODY = b'{"result":"echo: benchmark","latency_ms":0,"model":"sim-node"}'
COMMON = (b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 22:57:32 GMT\r\nserver: uvicorn\r\n"
          b"content-length: 62\r\n")
HEADS = {
    "ten-line": COMMON + b"content-type: application/json\r\n\r\n",
    "gateway, limits off": COMMON + b"content-type: application/json; charset=utf-8\r\n"
    b"x-gateway-backend: node\r\nx-request-id: 3e01433ee3f5946aa375ea6e727876d3\r\n\r\n",
    "gateway, limits on": COMMON + b"content-type: application/json; charset=utf-8\r\n"
    b"x-gateway-backend: node\r\nratelimit-policy: \"global\";q=1000000;w=1\r\n"
    b"ratelimit: \"global\";r=999999;t=1\r\nratelimit-scope: global\r\n"
    b"x-ratelimit-limit: 1000000\r\nx-ratelimit-remaining: 999999\r\nx-ratelimit-reset: 1\r\n"
    b"x-request-id: 92f981919fd1b57bf32d4aec941a630d\r\n\r\n",
}


class Counting:
    """A transport that keeps nothing: counts the bytes written."""

    written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False


async def answers(head: bytes, repeat: int) -> float:
    """Seconds of CPU for `repeat` answers: parse head + body, filter, send to a client."""
    loop = asyncio.get_running_loop()
    client = Counting()
    flow = FlowControl(client)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "POST", "path": "/infer/node", "http_version": "1.1"}
    quiet = logging.getLogger("host_answer_cost")
    data = head + BODY
    began = time.process_time()
    for _ in range(repeat):
        connection = _Connection(loop)
        connection.transport = client  # type: ignore[assignment]
        connection.data_received(data)
        cycle = RequestResponseCycle(scope, client, flow, quiet, quiet,  # type: ignore[arg-type]
                                     False, [], asyncio.Event(), False, True, lambda: None)
        await cycle.send({"type": "http.response.start",
                          "status": connection.parser.get_status_code(),
                          "headers": _answer_headers(connection.headers)})
        await cycle.send({"type": "http.response.body", "body": b"".join(connection.chunks),
                          "more_body": True})
        await cycle.send({"type": "http.response.body", "body": b"", "more_body": False})
    return time.process_time() - began


# The HTTP functions function_app/app.py registers (route, methods), and load/tenline's one:
# the host tries a request's path against them in precedence order (funchost/routes.py).
GATEWAY_ROUTES = [("healthz", ("GET",)), ("_gateway/health", ("GET",)),
                  ("_gateway/stats", ("GET",)), ("cachez", ("GET",)), ("metrics", ("GET",)),
                  ("_gateway/dashboard", ("GET",)),
                  ("{*path}", ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))]
TENLINE_ROUTES = [("{*path}", ("POST",))]


def routing_us(routes: list[tuple[str, tuple[str, ...]]], repeat: int) -> float:
    """CPU microseconds of the host's route match for POST /infer/node against `routes`."""
    table = build_table([HttpFunction(f"f{i}", f"id{i}", route, methods, "anonymous", "req")
                         for i, (route, methods) in enumerate(routes)], "")
    began = time.process_time()
    for _ in range(repeat):
        match(table, "POST", "/infer/node")
    return (time.process_time() - began) * 1e6 / repeat


def fields(head: bytes) -> int:
    return head.count(b"\r\n") - 2  # less the status line and the blank line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=15)
    args = parser.parse_args()
    us: dict[str, list[float]] = {}
    for _ in range(args.trials):  # the shapes interleaved, trial by trial
        for name, head in HEADS.items():
            seconds = asyncio.run(answers(head, args.repeat))
            us.setdefault(name, []).append(seconds * 1e6 / args.repeat)
    base = min(us["ten-line"])
    for name, head in HEADS.items():
        fastest = min(us[name])
        extra = fields(head) - fields(HEADS["ten-line"])
        per = f", {(fastest - base) / extra:.2f} us per extra field" if extra else ""
        print(f"{name}: {fields(head)} fields, {len(head)} bytes of head; {fastest:.2f} us per "
              f"answer (trials {', '.join(f'{x:.2f}' for x in us[name])}){per}")
    tables = {"gateway": GATEWAY_ROUTES, "ten-line": TENLINE_ROUTES}
    timed: dict[str, list[float]] = {}
    for _ in range(args.trials):
        for name, routes in tables.items():
            timed.setdefault(name, []).append(routing_us(routes, args.repeat))
    print("route match of POST /infer/node: " + "; ".join(
        f"{name} ({len(tables[name])} HTTP functions) {min(t):.2f} us"
        for name, t in timed.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
