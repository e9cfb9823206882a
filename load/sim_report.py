"""The simulator's report: the markdown table and the chart of load/simulate.py's rows."""

from __future__ import annotations

from pathlib import Path

from sim_run import SHARD_PER_INSTANCES
from sim_table import PARTITION_CAP

from function_app.ratelimit.config import LimiterConfig

DEFAULTS = {"rps": 20_000, "global_rps": 20_000, "expected": 4, "skew": 0.0, "attackers": 0.0,
            "busy": 0.0, "hop": 0.0, "tokens": 0.0, "budgets": 0, "idle": 0.0}


def table(rows: list[dict], args) -> str:
    clients = (f"plus {args.clients} clients ({args.client_rps:.0f}/s each, burst twice that, "
               "Zipf popularity)" if args.clients else "and no client limits")
    command = (f"--instances {args.instances} --seconds {args.seconds:g} --warmup "
               f"{args.warmup:g} --sync {args.sync}")
    command += f" --clients {args.clients}" if args.clients != 10_000 else ""
    command += f" --period {args.period:g}" if args.period != LimiterConfig().tally_period_s else ""
    for flag in ("rps", "global_rps", "expected", "skew", "attackers", "busy", "hop", "tokens",
                 "budgets", "idle"):
        if getattr(args, flag) != DEFAULTS[flag]:
            command += f" --{flag.replace('_', '-')} {getattr(args, flag):g}"
    mode = (f"tally mode, period {args.period:g} s" if args.sync == "tally" else
            f"lease mode, one shard per {SHARD_PER_INSTANCES} instances")
    lines = [f"Simulated {args.seconds:.0f} s per N counted after {args.warmup:.0f} s of the same "
             f"traffic, seed {args.seed}, {mode}: {args.rps:.0f} "
             f"requests/s on one global key (limit {args.global_rps:.0f}/s, burst the same) "
             f"{clients}, Zipf spread over instances, a tenth leaving at T/3 (their traffic "
             "spread over the others) and as many joining at "
             f"2T/3. Command: `.venv/bin/python load/simulate.py {command}`.", "",
             "| N | admitted | storage ops / admitted | of which global key | of which client "
             "keys | of which tally rows | hottest partition entities/s (cap "
             f"{PARTITION_CAP}) | ServerBusy | global admitted / allowance | within bound | "
             "clients over their bound | admitted / exact limiter's | clients' shortfall | "
             "global admitted / bound |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        within = "yes" if r["global_admitted"] <= r["bound"] else "NO"
        lines.append(f"| {r['instances']} | {r['admitted']} | {r['ops_per_admitted']:.3f} | "
                     f"{r['global_ops_per_admitted']:.3f} | {r['client_ops_per_admitted']:.3f} | "
                     f"{r['tally_ops_per_admitted']:.3f} | "
                     f"{r['hottest_partition_ops_s']} | {r['server_busy']} | "
                     f"{r['global_vs_allowance']:.3f} | {within} | {r['clients_over_bound']} | "
                     f"{r['vs_exact']:.3f} | {r['client_shortfall']:.0f} | "
                     f"{r['global_admitted'] / r['bound']:.3f} |")
    return "\n".join(lines)


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["instances"] for r in rows]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(ns, [r["ops_per_admitted"] for r in rows], "o-", label="storage ops / admitted")
    left.axhline(0.05, linestyle=":", color="grey", label="target 0.05")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("instances (N)")
    left.set_ylabel("storage operations per admitted request")
    right = left.twinx()
    right.plot(ns, [r["global_admitted"] / r["bound"] for r in rows], "s--", color="tab:red",
               label="global admitted / stated bound")
    right.set_ylabel("admitted / bound (<= 1 holds)")
    fig.legend(loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
