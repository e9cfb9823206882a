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
Writes docs/<--name>.md and docs/<--name>.png (`make simulate` runs it twice: with the
clients, docs/simulation.*, and the global key alone, docs/simulation-global.*).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "load")]
from sim_report import DEFAULTS, SHARD_PER_INSTANCES, chart, table  # noqa: E402
from sim_table import SimTableStore  # noqa: E402

from function_app.ratelimit import bucket  # noqa: E402
from function_app.ratelimit.config import LimiterConfig  # noqa: E402
from function_app.ratelimit.lease import lease  # noqa: E402
from function_app.ratelimit.lease.limiter import Limiter  # noqa: E402
from function_app.ratelimit.limits import Limit, ScopedLimit  # noqa: E402
from function_app.ratelimit.tally import aggregator as tally_aggregator  # noqa: E402
from function_app.ratelimit.tally.limiter import TallyLimiter  # noqa: E402
from tests.support.bounds import lease_overshoot_bound, tally_admitted_bound  # noqa: E402
from tests.support.clock import FakeClock  # noqa: E402

STEP_S = 0.002
# The aggregator's worker thread would let virtual time pass while it sums: keep it on the
# loop, so a run stays deterministic for its seed (its CPU is what the loop would spend).
tally_aggregator.OFFLOAD = False


def zipf_weights(n: int, s: float, rng: random.Random) -> list[float]:
    weights = [1 / (k + 1) ** s for k in range(n)]
    rng.shuffle(weights)
    return weights


def zipf_cumulative(n: int, s: float, rng: random.Random) -> list[float]:
    return list(itertools.accumulate(zipf_weights(n, s, rng)))


def pick(cumulative: list[float], rng: random.Random) -> int:
    return bisect.bisect_left(cumulative, rng.random() * cumulative[-1])


class SkewedClock:
    """An instance's own clock, `skew` seconds off the simulation's (scenario --skew)."""

    def __init__(self, inner: FakeClock, skew: float) -> None:
        self.inner, self.skew = inner, skew

    def now(self) -> float:
        return self.inner.now() + self.skew

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def skew_of(k: int, skew: float) -> float:
    """A fifth of the instances run `skew` ahead, a fifth as far behind, the rest on time."""
    return (0.0, skew, -skew, 0.0, 0.0)[k % 5] if skew else 0.0


def request_cost(args, rng: random.Random) -> tuple[float, float]:
    """(reserved, refunded) of one request: 1 and 0, or with --tokens a reservation of up to
    --tokens settled at once with a refund of a random part of it (max_tokens vs usage)."""
    if not args.tokens:
        return 1.0, 0.0
    reserved = rng.uniform(0.1, 1.0) * args.tokens
    return reserved, rng.uniform(0.0, 0.9) * reserved


class Exact:
    """The reference: exact buckets fed the same arrivals (all-or-nothing over both scopes)."""

    def __init__(self) -> None:
        self.states: dict[str, bucket.BucketState] = {}

    def refund(self, scoped: list[ScopedLimit], amount: float) -> bool:
        """Give `amount` back to every scope of an admitted request (True: chains in `if`)."""
        for s in scoped:
            self.states[s.key] = bucket.settled(self.states[s.key], s.limit.burst, -amount)
        return True

    def admits(self, scoped: list[ScopedLimit], now: float, cost: float = 1.0) -> bool:
        verdicts = [bucket.decide(self.states.get(s.key), s.limit, cost, now) for s in scoped]
        if all(v.allowed for v, _ in verdicts):
            for s, (_, state) in zip(scoped, verdicts, strict=True):
                self.states[s.key] = state
            return True
        return False


async def run_one(n: int, args) -> dict:
    rng = random.Random(args.seed * 7919 + n)
    clock = FakeClock(start=1_700_000_000.0)
    store = SimTableStore(clock, random.Random(args.seed + n), busy=args.busy)
    config = LimiterConfig(storage_timeout_s=1e9, expected_instances=args.expected or n,
                           lease_ttl_s=args.lease_ttl, sync=args.sync,
                           tally_period_s=args.period)
    tallying = args.sync == "tally"
    shards = 1 if tallying else args.shards or max(1, -(-n // SHARD_PER_INSTANCES))
    spawned = itertools.count()

    def new_instance() -> Limiter | TallyLimiter:
        k = next(spawned)
        rng_k = random.Random(args.seed * 1_000_003 + k)
        if tallying:
            own = SkewedClock(clock, skew_of(k, args.skew)) if args.skew else clock
            return TallyLimiter(store, own, config, f"i{k}", background=False, rng=rng_k)
        return Limiter(store, clock, config, f"i{k}", background=False, jitter_on_clock=True,
                       rng=rng_k)

    limiters = [new_instance() for _ in range(n)]
    everyone = list(limiters)
    shares = zipf_weights(n, 0.8, rng)  # each instance's part of the arrivals
    weights = list(itertools.accumulate(shares))
    client_cum = zipf_cumulative(args.clients, 1.0, rng) if args.clients else []
    unit = args.tokens or 1.0  # the costs' upper end: u in the bound
    global_limit = Limit(args.global_rps * unit, args.global_rps * unit)
    client_limit = Limit(args.client_rps * unit, args.client_rps * 2 * unit)
    attacker_limit = Limit(args.client_rps, args.client_rps * 2)
    counts = {"admitted": 0, "denied": 0, "global_admitted": 0, "exact_admitted": 0}
    exact_per_client: Counter[str] = Counter()
    per_client: Counter[str] = Counter()
    exact = Exact()
    pending: set[asyncio.Task] = set()
    reasons: Counter[str] = Counter()

    async def one(limiter: Limiter | TallyLimiter, scoped: list[ScopedLimit],
                  measured: bool, cost: float = 1.0, refund: float = 0.0) -> None:
        decision = await limiter.acquire(scoped, cost)
        if decision.allowed and refund:
            limiter.adjust(scoped, -refund)
        if not measured:
            return
        if decision.allowed:
            counts["admitted"] += 1
            counts["global_admitted"] += cost - refund
            if len(scoped) > 1:
                per_client[scoped[1].key] += cost - refund
        else:
            counts["denied"] += 1
            reasons[decision.reason] += 1

    warm = int(args.warmup / STEP_S)
    steps = int(args.seconds / STEP_S)
    churn = max(1, n // 10) if n > 1 else 0
    tick_every = max(1, int(config.tick_s / STEP_S))
    ops_before: Counter[str] = Counter()
    start = clock.now()
    attacker_ids = itertools.count()
    for step in range(-warm, steps):
        now = clock.now()
        measured = step >= 0
        if step == 0:  # the fleet is warm: count from here
            ops_before = Counter(store.ops_by_scope)
        if churn and step == steps // 3:  # a tenth of the instances leave
            for lim in limiters[:churn]:
                pending.add(asyncio.ensure_future(lim.close()))
            # The load balancer spreads their traffic over the others in proportion.
            limiters, shares = limiters[churn:], shares[churn:]
            weights = list(itertools.accumulate(shares))
        if churn and step == 2 * steps // 3:  # as many join
            limiters += [new_instance() for _ in range(churn)]
            everyone.extend(limiters[-churn:])
            shares += [rng.choice(shares) for _ in range(churn)]  # as busy as a random other
            weights = list(itertools.accumulate(shares))
        for _ in range(_poisson(args.rps * STEP_S, rng)):
            scoped = [ScopedLimit("global", "global", global_limit, shards)]
            where = pick(weights, rng)
            if client_cum:
                index = pick(client_cum, rng)
                scoped.append(ScopedLimit("client", f"c{index}", client_limit))
                if args.hop:  # each client on one instance at a time, moving every --hop s
                    where = (index + int((now - start) / args.hop)) % len(limiters)
            cost, refund = request_cost(args, rng)
            if exact.admits(scoped, now, cost) and exact.refund(scoped, refund) and measured:
                counts["exact_admitted"] += 1
                if client_cum:
                    exact_per_client[scoped[1].key] += cost - refund
            task = asyncio.ensure_future(
                one(limiters[where], scoped, measured, cost, refund))
            pending.add(task)
            task.add_done_callback(pending.discard)
        for _ in range(_poisson(args.attackers * STEP_S, rng)):  # fresh ids, max_tokens 1e9
            scoped = [ScopedLimit("global", "global", global_limit, shards),
                      ScopedLimit("client", f"a{next(attacker_ids)}", attacker_limit)]
            task = asyncio.ensure_future(one(limiters[pick(weights, rng)], scoped, False, 1e9))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if step % tick_every == 0:
            for lim in limiters:
                task = asyncio.ensure_future(lim.maintain())
                pending.add(task)
                task.add_done_callback(pending.discard)
        await clock.advance(STEP_S)
    for _ in range(int(5 / STEP_S)):  # let leases and returns in flight finish
        if not pending:
            break
        await clock.advance(STEP_S)
    elapsed = args.seconds
    allowance = global_limit.burst + global_limit.rate * elapsed
    peak = n + (churn if n > 1 else 0)
    totals: Counter[str] = Counter()
    for lim in everyone:
        totals.update(lim.counters)
    print(f"N={n} limiter counters: {dict(totals)} denials: {dict(reasons)}", file=sys.stderr)
    if tallying:
        # Instances that joined during the warm-up were counted before the window opened (a
        # summary counts a joiner within two periods); the churn's joiners join inside it.
        joined = churn if args.warmup >= 2 * args.period + 1 else peak

        counted = int(0.9 * n) if joined == churn else 0  # joiners join a counted fleet

        def bound_of(limit: Limit) -> float:
            return tally_admitted_bound(limit, peak, unit, args.period, elapsed, joined,
                                        config.expected_instances, counted)
    else:
        def bound_of(limit: Limit) -> float:
            per_shard = lease.shard_limit(limit, shards)
            return (limit.burst + limit.rate * elapsed
                    + shards * lease_overshoot_bound(per_shard, config.lease_s, peak, 1))
    bound = bound_of(global_limit)
    client_bound = bound_of(client_limit)
    clients_over = sum(1 for count in per_client.values() if count > client_bound)
    client_shortfall = sum(max(0, exact_per_client[c] - per_client[c]) for c in exact_per_client)
    admitted = max(1, counts["admitted"])
    ops = Counter(store.ops_by_scope)
    ops.subtract(ops_before)
    return {"instances": n, "shards": shards, **counts, "ops": ops.total(),
            "ops_per_admitted": ops.total() / admitted,
            "global_ops_per_admitted": ops["global"] / admitted,
            "client_ops_per_admitted": ops["client"] / admitted,
            "hottest_partition_ops_s": store.hottest_partition_ops_per_s(),
            "tally_ops_per_admitted": ops["tally"] / admitted,
            "clients_over_bound": clients_over, "client_shortfall": client_shortfall,
            "vs_exact": counts["admitted"] / max(1, counts["exact_admitted"]),
            "busiest_client": max(per_client.values(), default=0),
            "client_bound": client_bound,
            "server_busy": store.server_busy, "allowance": allowance, "bound": bound,
            "global_vs_allowance": counts["global_admitted"] / allowance}


def _poisson(mean: float, rng: random.Random) -> int:
    # Knuth's method is fine for the small means of one step (rps * STEP_S <= ~40).
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


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
    """The stated bound broken: on the global key, or by any client on its own key."""
    return row["global_admitted"] > row["bound"] or row["clients_over_bound"] > 0


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
    parser.add_argument("--skew", type=float, default=0.0,
                        help="a fifth of the instances this many seconds ahead, a fifth behind")
    parser.add_argument("--attackers", type=float, default=0.0,
                        help="requests/s from fresh client ids asking 1e9 tokens (phi attack)")
    parser.add_argument("--busy", type=float, default=0.0,
                        help="fraction of storage operations answered 503 ServerBusy")
    parser.add_argument("--hop", type=float, default=0.0,
                        help="each client on one instance, moving to the next every HOP s")
    parser.add_argument("--tokens", type=float, default=0.0,
                        help="token costs: reservations up to TOKENS, part refunded at once; "
                        "limits are the request limits times TOKENS")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--name", default="simulation",
                        help="output files: <out>/<name>.md and <out>/<name>.png")
    return parser


if __name__ == "__main__":
    sys.exit(main())
