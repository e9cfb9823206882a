"""The limiter's share of the latency tail when instances take turns on a key, in one process.

    .venv/bin/python load/tail_turns.py [--rounds 6] [--gap 6] [--rivals 2] [--rate 200]
        [--json FILE]

`make bench` starts three host + worker processes of the defaults gateway on one Azurite; its
open loop gives each 2 s slice to one of them in turn, so every process resumes after about
20 s of rest on rows the other two wrote meanwhile. `load/profile_tail.py` (one limiter) never
meets that. Here one gateway with the defaults (limits on far from binding, rows on a local
Azurite) and one with limits off take turns at --rate requests/s against the 30-50 ms Node
simulator, as in profile_tail; during the --gap before each slice of the defaults, --rivals
other limiter instances (each a new one, as if another process) lease and give back on the
same keys, so the gateway's ETags are stale when it resumes, as in the bench.

The defaults take two kinds of turns, alternating in one run: `new` (this tree's limiter) and
`old` (`KeyState.rewritten` kept empty: the ETag in hand trusted after a pause, as before
pass 12). Per kind: the requests that awaited a lease per 4,000 and their time in `acquire`,
p50/p99 of the latency, the loop's stalls (a 1 ms sleeper's lateness: count per second over 2,
5 and 10 ms, p99, max), and each lease made for waiting requests as its storage calls in order
(R read, W write, C a 412) with the back-off it slept. Then the background work: Table calls
per second by table (the limiter's rows, the routing store's) and the limiter's maintenance
passes per second, while a kind's slices ran and while idle.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from profile_tail import SLOW, build, hook_limiters, pick, slice_of  # noqa: E402
from tail_watch import Watch  # noqa: E402

from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import spawn_node  # noqa: E402

LEASE: contextvars.ContextVar[dict] = contextvars.ContextVar("tail_turns_lease")
LEASES: list[dict] = []
SCOPED: list = []  # the far gateway's scoped limits, as its first request asked
TABLE_CALLS: list[tuple[float, str]] = []  # (time, table) of every Table HTTP request
PASSES: list[float] = []  # maintenance passes' times
KIND = {"now": "-"}  # which kind of turn is running (for leases)


def hooks() -> None:
    """Record each lease's storage calls, the scoped limits, Table calls and maintenance."""
    from azure.core.pipeline.transport import _aiohttp

    from function_app.ratelimit.engine import LimiterEngine
    from function_app.ratelimit.guarded import GuardedStore
    from function_app.ratelimit.lease.leaser import Leaser
    from function_app.ratelimit.lease.maintenance import Maintenance

    hook_limiters()
    acquire = LimiterEngine.acquire

    async def capture(self, scoped, cost=1):
        if not SCOPED and scoped:
            SCOPED.extend(scoped)
        return await acquire(self, scoped, cost)

    LimiterEngine.acquire = capture  # type: ignore[method-assign]
    lease = Leaser.lease

    async def timed(self, ks, target, cost):
        rec = {"waited": ks.waiting > 0, "calls": "", "backoff_ms": 0.0, "kind": KIND["now"],
               "scope": ks.scope}
        token = LEASE.set(rec)
        began = time.perf_counter()
        try:
            return await lease(self, ks, target, cost)
        finally:
            rec["ms"] = (time.perf_counter() - began) * 1000
            LEASE.reset(token)
            if getattr(self, "_tail_turns_main", False):
                LEASES.append(rec)

    Leaser.lease = timed  # type: ignore[method-assign]
    after = Leaser._after_conflict

    async def after_conflict(self, ks, shard, attempt):
        rec = LEASE.get(None)
        began = time.perf_counter()
        try:
            return await after(self, ks, shard, attempt)
        finally:
            if rec is not None:
                rec["calls"] += "C"
                rec["backoff_ms"] += (time.perf_counter() - began) * 1000

    Leaser._after_conflict = after_conflict  # type: ignore[method-assign]
    for name, letter in (("read", "R"), ("write", "W")):
        original = getattr(GuardedStore, name)

        def wrap(original=original, letter=letter):
            async def call(self, *args, **kwargs):
                rec = LEASE.get(None)
                if rec is not None:
                    rec["calls"] += letter
                return await original(self, *args, **kwargs)
            return call

        setattr(GuardedStore, name, wrap())
    send = _aiohttp.AioHttpTransport.send

    async def counted(self, request, **kwargs):
        path = request.url.split("?")[0].rsplit("/", 1)[-1]
        TABLE_CALLS.append((time.perf_counter(), path.split("(")[0] or "?"))
        return await send(self, request, **kwargs)

    _aiohttp.AioHttpTransport.send = counted  # type: ignore[method-assign]
    run_once = Maintenance.run_once

    async def counted_pass(self):
        PASSES.append(time.perf_counter())
        return await run_once(self)

    Maintenance.run_once = counted_pass  # type: ignore[method-assign]


async def rivals_write(count: int, connection: str) -> None:
    """`count` new limiter instances lease on the far gateway's keys and give everything back
    (another process's turn in the bench: the rows change under the gateway's cached ETags)."""
    from function_app.adapters.limitstore_table import open_limit_storage
    from function_app.core.clock import SystemClock
    from function_app.ratelimit.config import LimiterConfig
    from function_app.ratelimit.modes import make_limiter

    for i in range(count):
        storage = open_limit_storage(connection)
        assert storage is not None
        rival = make_limiter(storage.buckets, SystemClock(), LimiterConfig(), f"rival-{i}")
        for _ in range(5):
            await rival.acquire(SCOPED, 1)
        await rival.close()
        await storage.close()


def limiter_of(gateway):
    """The Limiter inside a built gateway (its `close` is one of the gateway's closers)."""
    from function_app.ratelimit.lease.limiter import Limiter

    for close in gateway.closers:
        if isinstance(getattr(close, "__self__", None), Limiter):
            return close.__self__
    raise LookupError("no lease limiter in the gateway")


def set_kind(limiter, kind: str) -> None:
    """`old`: a KeyState's `rewritten` looks empty to the leaser (the ETag in hand trusted
    after a pause, the rule before pass 12); what a 412 adds is kept for the next `new`."""
    KIND["now"] = kind
    for ks in limiter._keys.values():
        real = ks.rewritten.real if isinstance(ks.rewritten, _Blind) else ks.rewritten
        ks.rewritten = _Blind(real) if kind == "old" else real


class _Blind(set):
    """Empty to `in`; additions go to the real set."""

    def __init__(self, real: set) -> None:
        super().__init__()
        self.real = real

    def __contains__(self, item) -> bool:
        return False

    def add(self, item) -> None:
        self.real.add(item)


async def run(args, azurite: Azurite) -> dict:
    from azurefunctions.extensions.http.fastapi import Request

    from function_app import app as app_module
    from function_app.wiring.lazy import settle_collector

    hooks()
    far, off = await build("far", azurite), await build("off", None)
    limiter = limiter_of(far)
    limiter._leaser._tail_turns_main = True
    settle_collector()
    watch = Watch()
    watch.start()
    windows: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    records: dict[str, list[dict]] = collections.defaultdict(list)
    try:
        for gateway in (far, off):  # warm-up
            app_module.gateway.install(gateway)
            await slice_of(app_module.proxy, Request, args.rate, 0.5, [])
        order = [("new", far), ("off", off), ("old", far), ("off", off)]
        for k in range(args.rounds):
            for kind, gateway in order if k % 2 == 0 else order[::-1]:
                gap_began = time.perf_counter()
                if gateway is far:
                    await rivals_write(args.rivals, azurite.connection_string)
                await asyncio.sleep(max(0.0, args.gap - (time.perf_counter() - gap_began)))
                windows["idle"].append((gap_began, time.perf_counter()))
                if gateway is far:
                    set_kind(limiter, kind)
                app_module.gateway.install(gateway)
                began = time.perf_counter()
                await slice_of(app_module.proxy, Request, args.rate, args.slice, records[kind])
                windows[kind].append((began, time.perf_counter()))
                KIND["now"] = "-"
    finally:
        await watch.stop()
        for gateway in (far, off):
            await gateway.aclose()
    return {"records": records, "windows": windows, "stalls": watch.stalls}


def inside(times, windows) -> list:
    return [t for t in times if any(a <= (t[0] if isinstance(t, tuple) else t) <= b
                                    for a, b in windows)]


def report(out: dict, args) -> dict:
    seconds = {k: sum(b - a for a, b in w) for k, w in out["windows"].items()}
    summary = {}
    for kind in ("new", "old", "off"):
        recs = out["records"][kind]
        n = max(len(recs), 1)
        lat = [r["latency_ms"] for r in recs]
        waited = [r.get("acquire_ms", 0.0) for r in recs if r.get("awaited_storage")]
        stalls = [s * 1000 for _, s in inside(out["stalls"], out["windows"][kind])]
        secs = max(seconds[kind], 1e-9)
        leases = [x for x in LEASES if x["kind"] == kind and x["waited"]]
        summary[kind] = {
            "requests": len(recs), "errors": sum(r["status"] != 200 for r in recs),
            "p50_ms": pick(lat, 0.5), "p99_ms": pick(lat, 0.99), "max_ms": max(lat, default=0),
            "awaited_lease_per_4000": 4000 * len(waited) / n,
            "awaited_acquire_ms_p50": pick(waited, 0.5), "awaited_acquire_ms_max":
                max(waited, default=0.0),
            "stalls_per_s": {f">{t}ms": sum(s > t for s in stalls) / secs for t in (2, 5, 10)},
            "stall_p99_ms": pick(stalls, 0.99), "stall_max_ms": max(stalls, default=0.0),
            "leases_for_waiting": len(leases),
            "lease_calls": dict(collections.Counter(x["calls"] for x in leases)),
            "lease_ms_p50": pick([x["ms"] for x in leases], 0.5),
            "lease_ms_max": max((x["ms"] for x in leases), default=0.0),
            "backoff_ms_total": sum(x["backoff_ms"] for x in leases),
        }
    background = {}
    for kind in ("new", "old", "off", "idle"):
        secs = max(seconds.get(kind, 0.0), 1e-9)
        calls = collections.Counter(t for _, t in inside(TABLE_CALLS, out["windows"][kind]))
        background[kind] = {"seconds": round(secs, 1),
                            "table_calls_per_s": {t: round(c / secs, 2) for t, c in calls.items()},
                            "maintenance_passes_per_s": round(
                                len(inside(PASSES, out["windows"][kind])) / secs, 2)}
    return {"turns": summary, "background": background}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6,
                        help="rounds of four turns: new, off, old, off (reversed every other)")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--slice", type=float, default=2.0)
    parser.add_argument("--gap", type=float, default=6.0)
    parser.add_argument("--rivals", type=int, default=2,
                        help="other instances writing the rows during each gap of the defaults")
    parser.add_argument("--json")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as logs:
        node = spawn_node("node", Path(logs), SLOW)
        azurite = Azurite(Path(logs) / "azurite").start()
        try:
            os.environ.update({"NODE_SERVICE_URL": node.url, "PY_SERVICE_URL": node.url})
            out = asyncio.run(run(args, azurite))
        finally:
            node.stop()
            azurite.stop()
    result = report(out, args)
    print(f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}; {args.rounds} rounds, "
          f"{args.slice} s at {args.rate}/s per turn, {args.gap} s gap, {args.rivals} rivals")
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()
