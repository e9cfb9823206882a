"""Python bytecodes per request of the gateway's request path, in one process: a quick,
deterministic figure between runs of load/instructions_per_request.py (which counts the real
worker, and is the figure to report).

    .venv/bin/python load/path_bytecodes.py [--requests 2000] [--limits off|on] [--top 60]
        [--callgrind]

Builds the gateway as load/profile_pipeline.py does (limits off by default, cache and telemetry
on, the request log through the local worker's handler to /dev/null) against the instant Node
simulator, then sends POST /infer/node through `app.proxy` and the answer through an ASGI
`send`, one at a time, with the fields the local host forwards to the worker. Counts every
bytecode (sys.monitoring's INSTRUCTION event) by function over the measured requests and
prints the total per request, the gateway's own (function_app) share, and the functions with
the most. The worker's HTTP server and FastAPI layer are not in it (see worker_http.py).

`--callgrind` counts CPU instructions instead: the script runs itself under valgrind's callgrind
with instrumentation off, and switches it on for the measured requests only through callgrind's
client requests (a small C helper built with gcc against valgrind/callgrind.h).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bytecode_count import instructions

ROOT = Path(__file__).resolve().parents[1]


def scope(port: int, body: bytes) -> dict:
    """What the worker's uvicorn hands the app for one request the local host forwards (the
    client's fields less hop-by-hop ones, then X-Forwarded-* and the invocation id)."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/infer/node", "raw_path": b"/infer/node",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", port),
            "headers": [(b"host", b"127.0.0.1:7071"), (b"accept", b"*/*"),
                        (b"accept-encoding", b"gzip, deflate"),
                        (b"user-agent", b"python-httpx/0.28.1"),
                        (b"content-type", b"application/json"),
                        (b"x-forwarded-for", b"127.0.0.1"), (b"x-forwarded-proto", b"http"),
                        (b"x-forwarded-host", b"127.0.0.1:7071"),
                        (b"x-ms-invocation-id", b"0b8a5c1e-0000-4000-8000-000000000000"),
                        (b"content-length", str(len(body)).encode())]}


HELPER = """#include <valgrind/callgrind.h>
void cg_on(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void cg_dump(void) { CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION; }
"""


def helper(folder: Path) -> ctypes.CDLL:
    source = folder / "cgctl.c"
    source.write_text(HELPER)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(folder / "cgctl.so"),
                    str(source)], check=True)
    return ctypes.CDLL(str(folder / "cgctl.so"))


async def measure(requests: int, top: int, control: ctypes.CDLL | None = None,
                  tenline: bool = False) -> None:
    from azurefunctions.extensions.http.fastapi import Request

    from function_app import app as app_module
    from function_app.settings.load import load_settings
    from function_app.wiring.build import build_gateway

    body = b'{"prompt": "benchmark"}'
    if tenline:  # load/tenline's function, the floor (its own module name)
        spec = importlib.util.spec_from_file_location("tenline_main",
                                                      ROOT / "load/tenline/main.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        proxy = module.proxy
    else:
        built = await build_gateway(load_settings(os.environ))
        app_module.gateway.install(built)
        proxy = app_module.proxy
    statuses: list[int] = []

    async def one() -> None:
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        request_scope = scope(7071, body)
        response = await proxy(Request(request_scope, receive))
        await response(request_scope, receive, send)

    for _ in range(300):
        await one()
    if control is not None:
        control.cg_on()
        for _ in range(requests):
            await one()
        control.cg_dump()
        if not tenline:
            await app_module.gateway.aclose()
        return
    counts: dict = {}

    def count(code, _offset):
        counts[code] = counts.get(code, 0) + 1

    with instructions(count):
        for _ in range(requests):
            await one()
    if set(statuses) != {200}:
        raise RuntimeError(f"statuses {set(statuses)}")
    table: dict[str, int] = {}
    for code, n in counts.items():
        key = f"{code.co_filename}:{code.co_firstlineno}({code.co_qualname})"
        key = key.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        if "/function_app/" in key:  # another tree's (--app-dir)
            key = key[key.index("/function_app/") + 1:]
        table[key] = table.get(key, 0) + n
    total = sum(table.values()) / requests
    own = sum(v for k, v in table.items() if k.startswith("function_app")) / requests
    print(f"bytecodes per request: {total:,.1f} in all, {own:,.1f} in function_app "
          f"({requests} requests)")
    for key, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{n / requests:8.1f}  {key}")
    if not tenline:
        await app_module.gateway.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--limits", choices=("on", "off"), default="off")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--ten-line", action="store_true",
                        help="load/tenline's function instead of the gateway")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the gateway (e.g. TELEMETRY_ENABLED=false)")
    parser.add_argument("--app-dir", help="the function_app of this folder instead (e.g. a "
                        "`git archive` of another commit)")
    parser.add_argument("--keep", help="--callgrind: keep the measured window's dump here")
    args = parser.parse_args()
    if args.callgrind and "PATH_CALLGRIND_OUT" not in os.environ:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                            f"--callgrind-out-file={out}/cg.%p", sys.executable,
                            *sys.argv], check=True, capture_output=True,
                           env={**os.environ, "PATH_CALLGRIND_OUT": out, "PYTHONHASHSEED": "0"})
            dumps = sorted(Path(out).glob("cg.*.1"))
            total = int(re.search(r"^summary: (\d+)", dumps[-1].read_text(), re.M).group(1))
            if args.keep:
                dumps[-1].rename(args.keep)
        print(f"instructions per request: {total / args.requests:,.0f} ({args.requests} "
              "requests, callgrind)")
        return
    sys.path.insert(0, str(ROOT))
    from funchost import worklog
    from scripts.procs import INSTANT, spawn_node

    if args.app_dir:  # after this tree's harness modules: only function_app comes from there
        sys.path.insert(0, args.app_dir)

    with tempfile.TemporaryDirectory() as logs:
        node = spawn_node("node", Path(logs), INSTANT)
        try:
            os.environ.update({"NODE_SERVICE_URL": node.url, "PY_SERVICE_URL": node.url,
                               "BACKEND_URL": node.url})
            os.environ.update(item.split("=", 1) for item in args.env)
            if args.limits == "off":
                os.environ["RATE_LIMIT_ENABLED"] = "false"
            else:
                os.environ.update({k: "1000000" for k in ("GLOBAL_RPS", "GLOBAL_BURST",
                                                          "CLIENT_RPS", "CLIENT_BURST")})
            handler = worklog.install()
            handler.setStream(open(os.devnull, "w"))  # open for the process's life
            control = helper(Path(logs)) if args.callgrind else None
            asyncio.run(measure(args.requests, args.top, control, args.ten_line))
        finally:
            node.stop()


if __name__ == "__main__":
    main()
