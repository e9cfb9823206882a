"""Where the gateway's latency tail comes from, in one process at a fixed rate: which requests
awaited the limiter's storage, how long the loop stalled, which collections ran.

    .venv/bin/python load/profile_tail.py [--limits far off] [--rate 200] [--slices 10]
        [--slice 2] [--gap 6] [--sync lease|tally] [--memory] [--log] [--json FILE]

Mirrors `make bench`'s latency phase in one process: the gateway is built from the defaults
(limits on far from binding with the rows on a local Azurite, or off; cache and telemetry on),
and POST /infer/python goes through the function `app.py` runs (`proxy`) to the 30-50 ms Node
simulator, on an open-loop schedule of --rate requests/s (latency counted from each request's
scheduled start), in --slices slices of --slice seconds with --gap idle seconds between (the
bench's other three targets take their turns there). Each --limits value is a gateway of its
own, slices taking turns as in the bench.

Per request it records: latency; time inside the limiter's `acquire`; whether the request left
the fast path (`_decide`) and whether it awaited a lease or a tally sync (a storage round trip
or one in flight); the longest event-loop stall and garbage collection overlapping it. Printed:
the counts per 4,000 requests, and for the slowest 1 % what they had in common (awaited
storage, a stall, a collection, where in its slice it came).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from profile_pipeline import FAR, one, worker_logging  # noqa: E402
from tail_watch import StallStacks, Watch  # noqa: E402

from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import spawn_node  # noqa: E402

SLOW = {"LATENCY_MIN_MS": "30", "LATENCY_MAX_MS": "50"}  # make bench's latency backend
RECORD: contextvars.ContextVar[dict] = contextvars.ContextVar("profile_tail_record")
LEASES: list[tuple[bool, float, float]] = []  # (requests waited, round trip ms, target)


def hook_limiters() -> None:
    """Wrap the limiters' slow paths so each request's record says whether it took one and
    whether it awaited storage (a lease or a sync: one started or one in flight)."""
    from function_app.ratelimit.engine import LimiterEngine
    from function_app.ratelimit.lease.leaser import Leaser
    from function_app.ratelimit.lease.limiter import Limiter
    from function_app.ratelimit.tally.limiter import TallyLimiter

    acquire = LimiterEngine.acquire

    async def timed_acquire(self, scoped, cost=1):
        began = time.perf_counter()
        try:
            return await acquire(self, scoped, cost)
        finally:
            rec = RECORD.get(None)
            if rec is not None:
                rec["acquire_ms"] = (time.perf_counter() - began) * 1000

    def marking(cls, name: str, flag: str) -> None:
        original = getattr(cls, name)

        async def marked(self, *args, **kwargs):
            rec = RECORD.get(None)
            if rec is not None:
                rec[flag] = True
            return await original(self, *args, **kwargs)

        setattr(cls, name, marked)

    LimiterEngine.acquire = timed_acquire  # type: ignore[method-assign]
    marking(Limiter, "_decide", "slow_path")
    marking(TallyLimiter, "_decide", "slow_path")
    fetch = Limiter._fetch

    async def fetch_marked(self, ks, cost):
        rec = RECORD.get(None)
        if rec is not None and (ks.fetch is not None or ks.pool(self._clock.now()) < cost):
            rec["awaited_storage"] = True
        return await fetch(self, ks, cost)

    Limiter._fetch = fetch_marked  # type: ignore[method-assign]
    lease = Leaser.lease

    async def timed_lease(self, ks, target, cost):
        began, waited = time.perf_counter(), ks.waiting > 0
        try:
            return await lease(self, ks, target, cost)
        finally:
            LEASES.append((waited, (time.perf_counter() - began) * 1000, target))

    Leaser.lease = timed_lease  # type: ignore[method-assign]


async def build(limits: str, azurite: Azurite | None):
    """A gateway from the environment with limits `far` (on, never binding) or `off`."""
    from function_app.settings.load import load_settings
    from function_app.wiring.build import build_gateway

    env = dict(os.environ)
    if limits == "off":
        env["RATE_LIMIT_ENABLED"] = "false"
    else:
        env.update(FAR)
        if azurite is not None:
            env["RATE_LIMIT_STORAGE_CONNECTION"] = azurite.connection_string
    return await build_gateway(load_settings(env))


async def slice_of(proxy, request_type, rate: int, seconds: float, sink: list[dict]) -> None:
    """`rate` x `seconds` requests on a fixed schedule, each recorded in `sink`."""

    async def timed(index: int, scheduled: float) -> None:
        rec = {"index": index, "scheduled": scheduled}
        RECORD.set(rec)
        status = await one(proxy, request_type, 7071)
        rec["ended"] = time.perf_counter()
        rec["latency_ms"] = (rec["ended"] - scheduled) * 1000
        rec["status"] = status
        sink.append(rec)

    tasks = []
    start = time.perf_counter() + 0.01
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(timed(i, scheduled)))
    await asyncio.gather(*tasks)


async def run(args: argparse.Namespace, azurite: Azurite | None) -> dict[str, list[dict]]:
    from azurefunctions.extensions.http.fastapi import Request

    from function_app import app as app_module
    from function_app.wiring.lazy import settle_collector

    if args.slow_callbacks:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = args.slow_callbacks / 1000
        logging.getLogger("asyncio").addHandler(logging.StreamHandler(sys.stderr))
    hook_limiters()
    built = {mode: await build(mode, azurite) for mode in args.limits}
    settle_collector()  # as the worker does after its build
    records: dict[str, list[dict]] = {mode: [] for mode in args.limits}
    watch = Watch()
    if args.stall_stacks:
        watch.stacks = StallStacks(args.stall_stacks / 1000)
        watch.stacks.start()
    watch.start()
    try:
        for mode in args.limits:  # warm-up: pools, the first lease, imports
            app_module.gateway.install(built[mode])
            await slice_of(app_module.proxy, Request, args.rate, 0.5, [])
        for k in range(args.slices):
            for mode in args.limits if k % 2 == 0 else args.limits[::-1]:
                await asyncio.sleep(args.gap)
                app_module.gateway.install(built[mode])
                await slice_of(app_module.proxy, Request, args.rate, args.slice, records[mode])
    finally:
        await watch.stop()
        if watch.stacks is not None:
            watch.stacks.stop()
            for stack, count in watch.stacks.samples.most_common(args.top_stacks):
                print(f"{count:5d} ms  {stack}")
        for gateway in built.values():
            await gateway.aclose()
    for sink in records.values():
        for rec in sink:
            began = rec["scheduled"]
            rec["stall_ms"] = watch.worst_in(watch.stalls, began, rec["ended"]) * 1000
            rec["gc_ms"] = watch.worst_in(watch.gcs, began, rec["ended"]) * 1000
            del rec["scheduled"], rec["ended"]
    return records


def pick(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summary(recs: list[dict], per_slice: int) -> dict:
    """Counts per 4,000 requests, and what the slowest 1 % had in common."""
    n = len(recs)
    scale = 4000 / max(n, 1)
    tail = sorted(recs, key=lambda r: -r["latency_ms"])[:max(1, n // 100)]
    latencies = [r["latency_ms"] for r in recs]

    def share(rows: list[dict], test) -> float:
        return sum(1 for r in rows if test(r)) / max(len(rows), 1)

    return {
        "requests": n, "errors": sum(r["status"] != 200 for r in recs),
        "p50_ms": pick(latencies, 0.5), "p99_ms": pick(latencies, 0.99),
        "max_ms": max(latencies, default=0.0),
        "acquire_p99_ms": pick([r.get("acquire_ms", 0.0) for r in recs], 0.99),
        "acquire_max_ms": max((r.get("acquire_ms", 0.0) for r in recs), default=0.0),
        "slow_path_per_4000": scale * sum(bool(r.get("slow_path")) for r in recs),
        "awaited_storage_per_4000": scale * sum(bool(r.get("awaited_storage")) for r in recs),
        "stall_max_ms": max((r["stall_ms"] for r in recs), default=0.0),
        "tail": {
            "requests": len(tail), "latency_min_ms": tail[-1]["latency_ms"],
            "awaited_storage": share(tail, lambda r: r.get("awaited_storage")),
            "slow_path": share(tail, lambda r: r.get("slow_path")),
            "acquire_over_1ms": share(tail, lambda r: r.get("acquire_ms", 0.0) > 1.0),
            "stall_over_2ms": share(tail, lambda r: r["stall_ms"] > 2.0),
            "gc_over_1ms": share(tail, lambda r: r["gc_ms"] > 1.0),
            "first_tenth_of_slice": share(tail, lambda r: r["index"] < per_slice / 10),
        },
    }


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limits", nargs="+", choices=("far", "off"), default=["far", "off"])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--slice", type=float, default=2.0, help="seconds per slice")
    parser.add_argument("--gap", type=float, default=6.0,
                        help="idle seconds before each slice (the bench's other targets' turns)")
    parser.add_argument("--sync", choices=("lease", "tally"), help="RATE_LIMIT_SYNC")
    parser.add_argument("--memory", action="store_true",
                        help="limits far with the in-memory store instead of Azurite")
    parser.add_argument("--log", action="store_true",
                        help="the request log through the local worker's handler, to /dev/null")
    parser.add_argument("--json", help="also write the summaries and every record here")
    parser.add_argument("--stall-stacks", type=float, metavar="MS",
                        help="sample the loop thread's stack each ms while it has not ticked "
                        "for MS: what ran during the stalls")
    parser.add_argument("--top-stacks", type=int, default=25)
    parser.add_argument("--slow-callbacks", type=float, metavar="MS",
                        help="asyncio debug mode: log every loop step longer than MS (what "
                        "stalled the loop; debug mode slows everything, so no figures)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory() as logs:
        node = spawn_node("node", Path(logs), SLOW)
        azurite = None if args.memory else Azurite(Path(logs) / "azurite").start()
        try:
            os.environ.update({"NODE_SERVICE_URL": node.url, "PY_SERVICE_URL": node.url})
            if args.sync:
                os.environ["RATE_LIMIT_SYNC"] = args.sync
            if args.log:
                worker_logging()
            records = asyncio.run(run(args, azurite))
        finally:
            node.stop()
            if azurite is not None:
                azurite.stop()
    per_slice = int(args.rate * args.slice)
    summaries = {mode: summary(recs, per_slice) for mode, recs in records.items()}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.slices} x {args.slice} s at "
          f"{args.rate}/s, {args.gap} s idle before each slice")
    print(json.dumps(summaries, indent=1))
    for waited, name in ((True, "for waiting requests"), (False, "background top-ups")):
        rows = sorted(ms for w, ms, _ in LEASES if w is waited)
        if rows:
            print(f"leases {name}: {len(rows)}, round trip ms p50 {pick(rows, 0.5):.1f} "
                  f"max {rows[-1]:.1f}; targets "
                  f"{sorted({round(t) for w, _, t in LEASES if w is waited})[:12]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summaries": summaries, "records": records,
                                               "args": vars(args)}))


if __name__ == "__main__":
    main()
