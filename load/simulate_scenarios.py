"""Tally mode against what broke it (issue #23), one row per scenario, on load/simulate.py's
virtual clock and modelled Table Storage:

    .venv/bin/python load/simulate_scenarios.py [--instances 1000] [--jobs 2] [--only skew]

Every scenario runs the same fleet (E = RATE_LIMIT_EXPECTED_INSTANCES = 4, whatever N is; a
tenth of the instances leaving and as many joining) and checks the stated bound
(docs/ratelimit-tally.md, tests/support/bounds.py) on the global key, on every
client's own key and on every budget, and at most OPS_TARGET storage operations per admitted
request. Scenarios run in --jobs processes. Writes docs/simulation-scenarios.md (a full run);
exits 1 when a bound or the storage target is exceeded.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate import OPS_TARGET, ROOT, exceeded, parser, run_one, too_costly

# name -> (what it checks, flags). The global key is asked 4/3 of its limit in every one.
SCENARIOS = {
    "base": ("E = 4 while N differs, Zipf clients, churn", []),
    "tokens": ("token costs: reservations up to 2,000, part refunded at once",
               ["--tokens", "2000"]),
    "budgets": ("20 tenants' budgets (rate 0) on every request, spent mid-window",
                ["--budgets", "20"]),
    "hopping": ("a tenth of the clients (the busiest among them) pinned to an instance, moving "
                "to the next every 6 s", ["--hop", "6"]),
    "idle-rejoin": ("a tenth of the instances idle 7.5 s (left out of N), then back",
                    ["--idle", "1"]),
    "skew": ("a fifth of the clocks 2 s ahead, a fifth 2 s behind", ["--skew", "2"]),
    "busy": ("half of all storage operations answered 503 ServerBusy", ["--busy", "0.5"]),
    "attack": ("4,000 requests/s from fresh ids, each asking its whole burst once: 12,000 "
               "keys at 4/3 of their limit per period, more than a summary lists",
               ["--attackers", "4000"]),
    "many-clients": ("100,000 clients", ["--clients", "100000"]),
}
HEADER = ("| scenario | what | admitted | exact limiter's | admitted / exact | global admitted "
          "/ stated bound | clients over their bound | budget spent / budget (bound) | "
          "storage ops / admitted | hottest partition entities/s | ServerBusy | phi, last "
          "views (max) | aggregator CPU s (max) | aggregator reads, characters (max) | within "
          "bound and target |")


def one(name: str, argv: list[str]) -> tuple[str, dict, float]:
    """Run one scenario (in a worker process): its name, row and wall seconds."""
    started = time.monotonic()
    args = parser().parse_args(argv)
    row = asyncio.run(run_one(int(args.instances), args))
    return name, row, time.monotonic() - started


def budget(row: dict) -> str:
    """The most spent of a budget against it, and the bound (fail-open: one more)."""
    if not row["budget"]:
        return "-"
    return (f"{row['budget_spent_vs_budget']:.3f} ({row['budget_bound'] / row['budget']:.2f}), "
            f"{row['budgets_over']} over")


def hoppers(row: dict) -> str:
    """The hopping clients' own admitted / exact, when they hop."""
    share = row.get("hoppers_vs_exact")
    return "" if share is None else f" (hoppers {share:.2f})"


def line(name: str, row: dict) -> str:
    ok = not exceeded(row) and not too_costly(row)
    return (f"| {name} | {SCENARIOS[name][0]} | {row['admitted']} | {row['exact_admitted']} | "
            f"{row['vs_exact']:.3f}{hoppers(row)} | {row['global_admitted'] / row['bound']:.3f} | "
            f"{row['clients_over_bound']} | {budget(row)} | "
            f"{row['ops_per_admitted']:.4f} | {row['hottest_partition_ops_s']} | "
            f"{row['server_busy']} | {row['phi_max']:.2f} | {row['aggregate_cpu_s_max']:.3f} | "
            f"{row['aggregate_chars_max']:,} | {'yes' if ok else 'NO'} |")


def passed_on(argv: list[str]) -> list[str]:
    """The simulator's own options from this command line (without --only and --jobs)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--only", "--jobs"):
            skip = True
        elif not arg.startswith(("--only=", "--jobs=")):
            out.append(arg)
    return out


def main() -> int:
    own = parser()
    own.set_defaults(instances="1000", seconds=6.0, warmup=7.0)
    own.add_argument("--only", default="", help="comma-separated scenario names")
    own.add_argument("--jobs", type=int, default=2, help="scenarios run in parallel")
    base = own.parse_args()
    chosen = [s for s in SCENARIOS if not base.only or s in base.only.split(",")]
    common = [*passed_on(sys.argv[1:]), "--instances", base.instances, "--seconds",
              str(base.seconds), "--warmup", str(base.warmup), "--global-rps",
              str(base.rps * 0.75)]
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=max(1, base.jobs)) as pool:
        futures = [pool.submit(one, name, [*common, *SCENARIOS[name][1]]) for name in chosen]
        results = {}
        for future in futures:
            name, row, wall = future.result()
            print(f"{name}: {row} ({wall:.0f} s)", file=sys.stderr)
            results[name] = row
    command = ("`.venv/bin/python load/simulate_scenarios.py --instances "
               f"{base.instances} --seconds {base.seconds:g} --warmup {base.warmup:g}` "
               "(`make simulate`)")
    lines = [f"Tally mode, N = {base.instances}, E = 4, {base.seconds:g} s counted after "
             f"{base.warmup:g} s, {base.rps:.0f} requests/s, global limit 3/4 of that; target "
             f"{OPS_TARGET} storage operations per admitted request. Command: {command}, "
             f"{time.monotonic() - started:.0f} s wall with {base.jobs} jobs.", "", HEADER,
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [line(name, results[name]) for name in chosen]
    text = "\n".join(lines)
    print(text)
    if not base.only:
        (Path(base.out) / "simulation-scenarios.md").write_text(text + "\n")
    failed = [n for n in chosen if exceeded(results[n]) or too_costly(results[n])]
    if failed:
        print(f"BOUND OR STORAGE TARGET EXCEEDED in {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    assert ROOT
    sys.exit(main())
