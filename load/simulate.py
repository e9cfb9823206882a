"""The limiter at scales we cannot run here: the real Limiter classes on a virtual clock.

    .venv/bin/python load/simulate.py            (or: make simulate)

For each N in --instances, N `Limiter` objects (the production class, through its injected
Clock and RateLimitStore) share one modelled Table Storage (load/sim_table.py: log-normal
latency, ETag conflicts, per-partition and per-account caps answered 503 ServerBusy). Traffic:
--rps requests per second on one global key (limit --global-rps, burst the same), each request
also from one of --clients clients with its own limit (Zipf popularity), arrivals spread
unevenly over instances (Zipf weights), a tenth of the instances leaving at T/3 (their traffic
spread over the others in proportion) and as many
joining at 2T/3. Per N it reports storage operations per admitted request, the hottest
partition's operations per second against its cap, ServerBusy answers, the global key's
admitted count against burst + rate*T and the stated bound, and how many fewer requests it
admitted than an exact limiter fed the same arrivals (in total, and summed over clients: the
429s no limit required; counting per request instead would blame a limiter for admitting a
binding client's other requests than the exact one picks). Deterministic for a --seed.
Writes docs/<--name>.md and docs/<--name>.png. `make simulate` runs the scenarios
(load/simulate_scenarios.py) at 1,000 instances; this sweeps N for one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "load")]
from sim_report import DEFAULTS, chart, table  # noqa: E402
from sim_run import Run  # noqa: E402

from function_app.ratelimit.config import LimiterConfig  # noqa: E402

OPS_TARGET = 0.05  # storage operations per admitted request (issue #23: at 1,000 instances)


async def run_one(n: int, args) -> dict:
    """One N: the row sim_report.table prints (load/sim_run.py, load/sim_measure.py)."""
    return await Run(n, args).go()


def main() -> int:
    args = parser().parse_args()
    rows = []
    for n in (int(x) for x in args.instances.split(",")):
        started = time.monotonic()
        rows.append(asyncio.run(run_one(n, args)))
        print(f"N={n}: {rows[-1]} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    text = table(rows, args)
    out = Path(args.out)
    (out / f"{args.name}.md").write_text(text + "\n")
    chart(rows, out / f"{args.name}.png")
    print(text)
    over = [r["instances"] for r in rows if exceeded(r)]
    if over:
        print(f"BOUND EXCEEDED at N = {over}", file=sys.stderr)
        return 1
    return 0


def exceeded(row: dict) -> bool:
    """The stated bound broken: on the global key, by any client on its own key, or by any
    budget (a fact: never more than its size)."""
    return (row["global_admitted"] > row["bound"] or row["clients_over_bound"] > 0
            or row.get("budgets_over", 0) > 0)


def too_costly(row: dict) -> bool:
    """More than OPS_TARGET storage operations per admitted request."""
    return row["ops_per_admitted"] > OPS_TARGET


def scenario_flags(parser: argparse.ArgumentParser) -> None:
    """What each scenario of load/simulate_scenarios.py turns on."""
    parser.add_argument("--skew", type=float, default=0.0,
                        help="a fifth of the instances this many seconds ahead, a fifth behind")
    parser.add_argument("--attackers", type=float, default=0.0,
                        help="requests/s from fresh client ids, each asking its whole burst once "
                        "(phi attack)")
    parser.add_argument("--busy", type=float, default=0.0,
                        help="fraction of storage operations answered 503 ServerBusy")
    parser.add_argument("--budgets", type=int, default=0,
                        help="this many tenants' budgets (rate 0), one on each request, each "
                        "spent about halfway through the counted window")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="1: a tenth of the instances idle from the middle of the warm-up "
                        "to 2T/3, then rejoining")
    parser.add_argument("--hop", type=float, default=0.0,
                        help="every tenth client on one instance, moving to the next every HOP s")
    parser.add_argument("--tokens", type=float, default=0.0,
                        help="token costs: reservations up to TOKENS, part refunded at once; "
                        "limits are the request limits times TOKENS")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", default="1,10,100,1000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rps", type=float, default=DEFAULTS["rps"])
    parser.add_argument("--global-rps", type=float, default=DEFAULTS["global_rps"])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--client-rps", type=float, default=500,
                        help="each client's limit (default CLIENT_RPS; burst twice it)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds of traffic before counting (a fleet already running); "
                        "ServerBusy and the hottest partition count them too")
    parser.add_argument("--shards", type=int, default=0,
                        help="global key shards (default: one per 32 instances)")
    parser.add_argument("--lease-ttl", type=float, default=LimiterConfig().lease_ttl_s)
    parser.add_argument("--sync", choices=("lease", "tally"), default="tally",
                        help="RATE_LIMIT_SYNC of the simulated instances")
    parser.add_argument("--period", type=float, default=LimiterConfig().tally_period_s,
                        help="RATE_LIMIT_TALLY_PERIOD_S (tally mode)")
    parser.add_argument("--expected", type=int, default=4,
                        help="RATE_LIMIT_EXPECTED_INSTANCES (E; the Bicep's 4; 0: E = N)")
    scenario_flags(parser)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--name", default="simulation",
                        help="output files: <out>/<name>.md and <out>/<name>.png")
    return parser


if __name__ == "__main__":
    sys.exit(main())
