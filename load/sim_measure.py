"""A finished simulated run (load/sim_run.py) as one row: admitted against the exact limiter
and against the stated bound (tests/support/bounds.py), storage operations per admitted
request, the hottest partition, budgets overspent, the aggregator's CPU and payload."""

from __future__ import annotations

import sys
from collections import Counter

from sim_parts import AGGREGATIONS, HOPPERS

from function_app.ratelimit.lease import lease
from function_app.ratelimit.limits import Limit
from tests.support.bounds import lease_overshoot_bound, tally_admitted_bound


def bound_of(run, limit: Limit) -> float:
    """The most the stated bound lets the fleet admit on a key with `limit` in the window."""
    args, n = run.args, run.n
    peak = n + run.churn
    if not run.tallying:
        per_shard = lease.shard_limit(limit, run.shards)
        return (limit.burst + limit.rate * args.seconds
                + run.shards * lease_overshoot_bound(per_shard, run.config.lease_s, peak, 1))
    # Instances that joined during the warm-up were counted before the window opened (a
    # summary counts a joiner within two periods); the churn's joiners and the idle tenth
    # coming back join inside it, into the fleet the summaries then count.
    idle = run.idle_count
    warm = args.warmup >= 2 * args.period + 1
    joined = run.churn + idle if warm else peak
    counted = n - run.churn - idle if warm else 0
    return tally_admitted_bound(limit, peak, run.unit, args.period, args.seconds, joined,
                                 run.config.expected_instances, counted)


def measure(run, ops_before: Counter) -> dict:
    """The row: the run's counts, its storage cost, and its bounds' checks."""
    totals: Counter[str] = Counter()
    for lim in run.everyone:
        totals.update(lim.counters)
    print(f"N={run.n} limiter counters: {dict(totals)} denials: {dict(run.reasons)}",
          file=sys.stderr)
    counts, store = run.counts, run.store
    print(f"N={run.n} storage operations by kind (warm-up included): "
          f"{dict(store.ops_by_kind.most_common())}; of them ServerBusy: "
          f"{dict(store.busy_by_kind.most_common())}; hottest partition: "
          f"{store.hottest_partition()}", file=sys.stderr)
    counted = Counter(store.ops_by_kind)
    counted.subtract(run.kinds_before)
    print(f"N={run.n} storage operations by kind, counted window: "
          f"{dict(counted.most_common())}", file=sys.stderr)
    admitted = max(1, counts["admitted"])
    ops = Counter(store.ops_by_scope)
    ops.subtract(ops_before)
    allowance = run.global_limit.burst + run.global_limit.rate * run.args.seconds
    return {
        "instances": run.n, "shards": run.shards, "admitted": counts["admitted"],
        "denied": counts["denied"], "global_admitted": counts["global_admitted"],
        "exact_admitted": counts["exact_admitted"], "ops": ops.total(),
        "ops_per_admitted": ops.total() / admitted,
        "global_ops_per_admitted": ops["global"] / admitted,
        "client_ops_per_admitted": ops["client"] / admitted,
        "tally_ops_per_admitted": ops["tally"] / admitted,
        "budget_ops_per_admitted": ops["tenant"] / admitted,
        "hottest_partition_ops_s": store.hottest_partition_ops_per_s(),
        "server_busy": store.server_busy, "allowance": allowance,
        "bound": bound_of(run, run.global_limit),
        "global_vs_allowance": counts["global_admitted"] / allowance,
        "vs_exact": counts["admitted"] / max(1, counts["exact_admitted"]),
        "phi_max": max((lim._sync.view.phi for lim in run.everyone
                        if getattr(lim, "_sync", None) and lim._sync.view), default=0.0),
        "aggregations": len(AGGREGATIONS),
        "aggregate_cpu_s_max": max((c for c, _ in AGGREGATIONS), default=0.0),
        "aggregate_chars_max": max((b for _, b in AGGREGATIONS), default=0),
        **clients(run), **budgets(run),
    }


def clients(run) -> dict:
    """Clients over their own bound, the shortfall against the exact limiter, hoppers."""
    client_bound = bound_of(run, run.client_limit)
    hoppers = [c for c in run.exact_per_client if int(c[1:]) % HOPPERS == 0]
    hop_exact = sum(run.exact_per_client[c] for c in hoppers)
    return {
        "client_bound": client_bound,
        "clients_over_bound": sum(1 for c in run.per_client.values() if c > client_bound),
        "client_shortfall": sum(max(0, run.exact_per_client[c] - run.per_client[c])
                                for c in run.exact_per_client),
        "busiest_client": max(run.per_client.values(), default=0),
        "hoppers_vs_exact": (sum(run.per_client[c] for c in hoppers) / hop_exact
                             if run.args.hop and hop_exact else None),
    }


def budgets(run) -> dict:
    """A budget is exact while storage answers; without it each instance spends at most its
    counted fleet's share (fail-open), so a fleet at most one budget more."""
    budget = run.budget_limit.burst
    bound = budget * (1 + (run.n + run.churn) / max(1, run.n - run.churn))
    spent = max(run.per_budget.values(), default=0.0)
    return {"budget": budget, "budget_spent_max": spent, "budget_bound": bound,
            "budget_spent_vs_budget": spent / budget if budget else 0.0,
            "budgets_over": sum(1 for s in run.per_budget.values() if s > bound)}
