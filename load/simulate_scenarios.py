"""Tally mode against what broke it (issue #23), one row per scenario, on load/simulate.py's
virtual clock and modelled Table Storage:

    .venv/bin/python load/simulate_scenarios.py [--instances 100] [--seconds 6] [--only skew]

Every scenario runs the same fleet (E = RATE_LIMIT_EXPECTED_INSTANCES = 4, the Bicep's,
whatever N is; a tenth of the instances leaving and as many joining) and checks the stated
bound (docs/ratelimit-tally.md, tests/support/bounds.py) on the global key and on
every client's own key. Writes docs/simulation-scenarios.md; exits 1 when a bound is exceeded.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate import ROOT, exceeded, parser, run_one

# name -> (what it checks, flags). The global key is asked 4/3 of its limit in every one.
SCENARIOS = {
    "base": ("E = 4 while N differs, Zipf clients, churn", []),
    "tokens": ("token costs: reservations up to 2,000, part refunded at once",
               ["--tokens", "2000"]),
    "hopping": ("each client on one instance, moving to the next every 6 s",
                ["--hop", "6"]),
    "skew": ("a fifth of the clocks 2 s ahead, a fifth 2 s behind", ["--skew", "2"]),
    "busy": ("half of all storage operations answered 503 ServerBusy", ["--busy", "0.5"]),
    "attack": ("2,000 requests/s from fresh ids asking 1e9 tokens (inflating phi)",
               ["--attackers", "2000"]),
    "many-clients": ("100,000 clients (fewer, longer periods' worth of keys per row)",
                     ["--clients", "100000"]),
}


def main() -> int:
    own = parser()
    own.set_defaults(instances="100", seconds=6.0, warmup=7.0)
    own.add_argument("--only", default="", help="comma-separated scenario names")
    base = own.parse_args()
    chosen = [s for s in SCENARIOS if not base.only or s in base.only.split(",")]
    lines = [f"Tally mode, N = {base.instances}, E = 4, {base.seconds:g} s counted after "
             f"{base.warmup:g} s, {base.rps:.0f} requests/s, global limit 3/4 of that. Command: "
             "`.venv/bin/python load/simulate_scenarios.py --instances "
             f"{base.instances} --seconds {base.seconds:g} --warmup {base.warmup:g}`.", "",
             "| scenario | what | admitted | admitted / exact limiter's | global admitted / "
             "stated bound | clients over their bound | storage ops / admitted | hottest "
             "partition entities/s | ServerBusy | within bound |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    failed = []
    for name in chosen:
        what, flags = SCENARIOS[name]
        args = own.parse_args([*sys.argv[1:], "--global-rps", str(base.rps * 0.75), *flags])
        started = time.monotonic()
        row = asyncio.run(run_one(int(base.instances), args))
        print(f"{name}: {row} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
        ok = not exceeded(row)
        failed += [] if ok else [name]
        lines.append(f"| {name} | {what} | {row['admitted']} | {row['vs_exact']:.3f} | "
                     f"{row['global_admitted'] / row['bound']:.3f} | "
                     f"{row['clients_over_bound']} | {row['ops_per_admitted']:.3f} | "
                     f"{row['hottest_partition_ops_s']} | {row['server_busy']} | "
                     f"{'yes' if ok else 'NO'} |")
    text = "\n".join(lines)
    print(text)
    if not base.only:
        (Path(base.out) / "simulation-scenarios.md").write_text(text + "\n")
    if failed:
        print(f"BOUND EXCEEDED in {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    assert ROOT
    sys.exit(main())
