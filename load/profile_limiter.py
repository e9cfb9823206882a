"""The rate-limit stage's own cost per request, far from binding, in one process: Python calls
(cProfile, deterministic) and CPU microseconds (process time, noisy on a shared machine).

    .venv/bin/python load/profile_limiter.py [--sync lease|tally] [--requests 20000]
        [--rounds 5] [--clients 1] [--tree DIR]

Builds the stage as the wiring does (OverrideSource defaults of 1,000,000 rps and burst for
global and client, KeyLimitsFor, the lease or tally limiter on the memory store with its
background upkeep, the system clock) and sends requests through it to a `call_next` that
answers at once; the same loop without the stage is subtracted. `--tree DIR` imports
`function_app` from another tree (e.g. `git archive BASE | tar -x -C DIR`), so a base and this
tree are compared with the same command; run them alternately for CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
FAR = 1_000_000.0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sync", choices=("lease", "tally"), default="lease")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=1, help="client ids, in turn")
    parser.add_argument("--tree", type=Path, default=ROOT, help="where function_app is")
    return parser.parse_args()


def build(sync: str):
    """The stage, a request maker and the limiter (imports from the chosen tree)."""
    from function_app.adapters.limitstore_memory import MemoryRateLimitStore
    from function_app.core.clock import SystemClock
    from function_app.http.context import RequestContext
    from function_app.ratelimit.config import LimiterConfig
    from function_app.ratelimit.lease.limiter import Limiter
    from function_app.ratelimit.overrides import OverrideSource
    from function_app.ratelimit.scopes import defaults_from
    from function_app.ratelimit.stage import rate_limit_stage
    from function_app.ratelimit.tally.limiter import TallyLimiter
    from function_app.routing.routes import MATCH, parse_routes
    from function_app.tenants.limits import KeyLimitsFor

    clock = SystemClock()
    cls = TallyLimiter if sync == "tally" else Limiter
    limiter = cls(MemoryRateLimitStore(), clock, LimiterConfig(sync=sync), "bench")
    source = OverrideSource(None, clock, defaults_from(FAR, FAR, FAR, FAR), 30.0)
    stage = rate_limit_stage(limiter, KeyLimitsFor(source.limits_for))
    match = parse_routes([], {"python": "http://127.0.0.1:1", "node": "http://127.0.0.1:2"},
                         30.0).match("/infer/node", "POST")

    def request(client: str) -> SimpleNamespace:
        context = RequestContext(client_id=client)
        MATCH.set(context, match)
        return SimpleNamespace(context=context)

    return stage, request, limiter


async def answer(request):
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayResponse

    return GatewayResponse(200, Headers())


async def loop(stage, request, clients: list[str], n: int) -> float:
    """CPU seconds for n requests through `stage` (None: straight to the answer)."""
    began = time.process_time()
    for i in range(n):
        req = request(clients[i % len(clients)])
        response = await (answer(req) if stage is None else stage(req, answer))
        assert response.status == 200
    return time.process_time() - began


async def measure(args: argparse.Namespace) -> tuple[list[float], float]:
    stage, request, limiter = build(args.sync)
    clients = [f"198.51.100.{i}" for i in range(args.clients)]
    for _ in range(50):  # warm up: leases granted, the tally's first view read
        await loop(stage, request, clients, 200)
        await asyncio.sleep(0.02)
    figures = []
    for _ in range(args.rounds):
        bare = await loop(None, request, clients, args.requests)
        full = await loop(stage, request, clients, args.requests)
        figures.append((full - bare) / args.requests * 1e6)
    profile = cProfile.Profile()
    profile.enable()
    await loop(stage, request, clients, args.requests)
    profile.disable()
    with_stage = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    profile = cProfile.Profile()
    profile.enable()
    await loop(None, request, clients, args.requests)
    profile.disable()
    bare_calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    await limiter.close()
    return figures, (with_stage - bare_calls) / args.requests


def main() -> None:
    args = arguments()
    sys.path.insert(0, str(args.tree.resolve()))
    figures, calls = asyncio.run(measure(args))
    spread = ", ".join(f"{v:.2f}" for v in figures)
    print(f"{args.tree}: sync {args.sync}, {args.clients} client(s): {calls:.1f} calls per "
          f"request in the rate-limit stage; CPU {min(figures):.2f} us per request, best of "
          f"{len(figures)} rounds of {args.requests} ({spread})")


if __name__ == "__main__":
    main()
