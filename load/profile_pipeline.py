"""The gateway's own CPU per request, in one process, without host, worker or wrk: a steadier
figure than requests/s on a shared machine, and a deterministic profile (cProfile call counts).

    .venv/bin/python load/profile_pipeline.py [--requests 5000] [--concurrency 32]
        [--limits on|off] [--sync lease|tally] [--azurite] [--profile] [--top 40] [--log]

Builds the gateway from the defaults (limits on with the in-memory store and far from binding,
or off; cache and telemetry on) against the instant Node simulator, then sends POST /infer/node
through the same function `app.py` runs (`proxy`: the FastAPI request in, the streamed answer
out to an ASGI `send`), `--concurrency` at a time. Prints CPU ms per request (process time, this
process only: the simulator runs apart) and, with --profile, the functions with the most own
time and their call counts per request.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import INSTANT, spawn_node  # noqa: E402

BODY = b'{"prompt": "benchmark"}'
PATH = "/infer/node"
CHUNKS = 200  # --stream: chunks per streamed completion
STREAM_BODY = json.dumps({"model": "sim-stream", "stream": True, "max_tokens": CHUNKS,
                          "messages": [{"role": "user", "content": "Hold the line."}]}).encode()
FAR = {"GLOBAL_RPS": "1000000", "GLOBAL_BURST": "1000000", "CLIENT_RPS": "1000000",
       "CLIENT_BURST": "1000000"}


def scope(port: int) -> dict:
    """What the worker's uvicorn hands the extension's FastAPI app for one wrk request."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": PATH, "raw_path": PATH.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", port),
            "headers": [(b"host", b"127.0.0.1:7071"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(BODY)).encode()),
                        (b"x-ms-invocation-id", b"0b8a5c1e-0000-4000-8000-000000000000")]}


async def one(proxy, request_type, port: int) -> int:
    """One request through `proxy`, its answer drained through an ASGI send; the status."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    status = 0

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    response = await proxy(request_type(scope(port), receive))
    await response(scope(port), receive, send)
    return status


def tenline():
    """load/tenline/main.py's module (its proxy function), loaded under a name of its own."""
    spec = importlib.util.spec_from_file_location("tenline_main", ROOT / "load/tenline/main.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


async def drive(requests: int, concurrency: int, profile: cProfile.Profile | None,
                kind: str = "aiohttp") -> float:
    """CPU seconds per request over `requests` (after a warm-up of 200), with a gateway built
    from the environment now (app.py's own, rebuilt each call); kind "ten-line": through
    load/tenline's function instead, the floor the gateway is compared with."""
    from azurefunctions.extensions.http.fastapi import Request

    from function_app import app as app_module
    from function_app.settings.load import load_settings
    from function_app.wiring.build import build_gateway

    if kind == "ten-line":
        os.environ["BACKEND_URL"] = os.environ["NODE_SERVICE_URL"]
        floor = tenline()
        proxy = floor.proxy
    else:
        built = await build_gateway(load_settings(os.environ))
        app_module.gateway.install(built)
        proxy = app_module.proxy
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            status = await one(proxy, Request, 7071)
            if status != 200:
                raise RuntimeError(f"status {status}")

    queue = iter(range(200))
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    queue = iter(range(requests))
    if kind != "ten-line" and "limiter" in built.stats_sources:
        before = built.stats_sources["limiter"]()
    began = time.process_time()
    if profile is not None:
        profile.enable()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if profile is not None:
        profile.disable()
    spent = time.process_time() - began
    if kind != "ten-line" and "limiter" in built.stats_sources:
        limiter_per_request(before, built.stats_sources["limiter"](), requests)
    if kind == "ten-line":
        for session in floor.session:
            await session.close()
    else:
        await app_module.gateway.aclose()
    return spent / requests


def limiter_per_request(before: dict, after: dict, requests: int) -> None:
    """The limiter's own counters over the measured requests: what its storage did."""
    names = ("fast_admitted", "storage_round_trips", "leases", "background_refills",
             "lease_waits", "tally_syncs", "tally_waits")
    print("limiter per request: " + ", ".join(
        f"{name} {(after.get(name, 0) - before.get(name, 0)) / requests:.4f}" for name in names))


def by_file(stats: pstats.Stats, requests: int) -> str:
    """Own time per request, summed by source file: where the gateway's share goes."""
    files: dict[str, float] = {}
    for (path, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        key = path.split("site-packages/")[-1].split("/")[0] if "site-packages" in path \
            else path.replace(str(ROOT) + "/", "")
        files[key] = files.get(key, 0.0) + row[2]
    total = sum(files.values())
    rows = sorted(files.items(), key=lambda kv: -kv[1])[:40]
    return "\n".join(f"{t / requests * 1e6:8.1f} us/req {t / total:6.1%}  {name}"
                     for name, t in rows)


def rounds(args: argparse.Namespace, profile: cProfile.Profile | None) -> dict[str, list]:
    """CPU per request for each UPSTREAM_CLIENT, rounds interleaved (order reversed each round)."""
    figures: dict[str, list] = {kind: [] for kind in args.upstream}
    for n in range(args.rounds):
        for kind in args.upstream if n % 2 == 0 else reversed(args.upstream):
            os.environ["UPSTREAM_CLIENT"] = kind
            figures[kind].append(asyncio.run(drive(args.requests, args.concurrency, profile,
                                                   kind)))
    return figures


def worker_logging() -> None:
    """The worker's root handler and level (INFO: the request log on), writing to /dev/null."""
    from funchost import worklog

    handler = worklog.install()
    handler.setStream(open(os.devnull, "w"))  # open for the process's life


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limits", choices=("on", "off"), default="on")
    parser.add_argument("--sync", choices=("lease", "tally"),
                        help="RATE_LIMIT_SYNC for limits on (default: the setting's default)")
    parser.add_argument("--azurite", action="store_true",
                        help="limits on: the limiter's rows on a local Azurite (as make bench), "
                        "not in memory, so its leases' and syncs' storage calls count too")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--upstream", nargs="+", default=["aiohttp"],
                        help="UPSTREAM_CLIENT values, or ten-line (load/tenline's function); "
                        "several: rounds interleaved, compared")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--stream", action="store_true",
                        help=f"streamed chat completions of {CHUNKS} chunks (CPU per chunk)")
    parser.add_argument("--chunk-ms", type=int, default=10,
                        help="--stream: the simulator's time between chunks")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--dump", help="--profile: also write the pstats file here")
    parser.add_argument("--log", action="store_true",
                        help="log as the local worker does (funchost/worklog.py's handler, to "
                        "/dev/null), so the figure includes the request-log line")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    global BODY, PATH
    sim = INSTANT
    if args.stream:
        BODY, PATH, sim = STREAM_BODY, "/v1/chat/completions", {
            **INSTANT, "ANSWER_TOKENS": str(CHUNKS), "TOKEN_MS": str(args.chunk_ms)}
    with tempfile.TemporaryDirectory() as logs:
        node = spawn_node("node", Path(logs), sim)
        azurite = None
        try:
            os.environ.update({"NODE_SERVICE_URL": node.url, "PY_SERVICE_URL": node.url,
                               "MODEL_ROUTES": json.dumps({"sim-stream": node.url}),
                               "CLIENT_TPM": "1e9", "MODEL_TPM": "1e9",
                               **(FAR if args.limits == "on" else
                                  {"RATE_LIMIT_ENABLED": "false"})})
            if args.sync:
                os.environ["RATE_LIMIT_SYNC"] = args.sync
            if args.azurite:
                azurite = Azurite(Path(logs) / "azurite").start()
                os.environ["RATE_LIMIT_STORAGE_CONNECTION"] = azurite.connection_string
            if args.log:
                worker_logging()
            profile = cProfile.Profile() if args.profile else None
            figures = rounds(args, profile)
        finally:
            node.stop()
            if azurite is not None:
                azurite.stop()
    unit, per = ("chunk", CHUNKS) if args.stream else ("request", 1)
    for kind, values in figures.items():
        ms = sorted(v * 1000 / per for v in values)
        print(f"limits {args.limits}, UPSTREAM_CLIENT={kind}: {statistics.median(ms):.4f} ms CPU "
              f"per {unit}, median of {len(ms)} rounds ({', '.join(f'{v:.4f}' for v in ms)}); "
              f"{args.requests} requests per round, {args.concurrency} at a time")
    if profile is not None:
        stats = pstats.Stats(profile)
        if args.dump:
            stats.dump_stats(args.dump)
        stats.sort_stats(args.sort).print_stats(args.top)
        print(by_file(stats, args.requests * args.rounds * len(args.upstream) * per))


if __name__ == "__main__":
    main()
