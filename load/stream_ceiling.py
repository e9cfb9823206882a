"""How many concurrent streams one worker holds within a p99 budget, from CPU per chunk and per
open (docs/perf/pass13-streams.md, "The ceiling").

    .venv/bin/python load/stream_ceiling.py [--chunk-us 100] [--open-us 2800] [--rate 10]
        [--stream-s 20] [--budget-ms 10] [--host-chunk-us 50] [--host-open-us 1100]
        [--cores 1] [--headroom 0.7]

The worker is one event loop: one core at most, and every chunk and every open waits behind
the work already queued on it. Modelled as one server taking jobs in arrival order: each of N
streams brings a chunk every 1/rate s (costing chunk-us of CPU) and, every stream-s, an open
(open-us; a new stream replaces an ended one). `simulate` replays that queue (Lindley's
recursion over the arrivals, random phases, a fixed seed) and gives the p99 wait of chunks and
of opens, the latency queueing adds to the chunk gap and to the time to first token.
`largest_within` is the largest N whose two p99 waits stay within the budget. The instance
bound is plain CPU: the worker and the host share `cores`, and both must stay under
`headroom` of them (the operating system's scheduler adds waits of whole time slices, several
milliseconds, once the runnable work nears the cores).

What the model leaves out, so its N is an upper bound: the event loop serves ready work in
batches, not strictly in arrival order; the host's own queue (here only its CPU counts);
garbage collection pauses; co-tenants on the cores; opens that come in bursts (a ramp at a
fixed rate, as `make bench-streams` opens them) rather than spread over the stream's length.
"""

from __future__ import annotations

import argparse
import math
import random


def utilisation(n: int, chunk_s: float, open_s: float, rate: float, stream_s: float) -> float:
    """The share of one core the worker is busy with n streams."""
    return n * (rate * chunk_s + open_s / stream_s)


def simulate(n: int, chunk_s: float, open_s: float, rate: float, stream_s: float,
             seconds: float = 10.0, seed: int = 0) -> tuple[float, float]:
    """The p99 queueing wait of chunks and of opens, in seconds, for n streams (each with a
    random phase; opens spread evenly over the stream's length), over `seconds` simulated."""
    rng = random.Random(seed)
    jobs: list[tuple[float, float, bool]] = []  # (arrival, work, is an open)
    period = 1.0 / rate
    for _ in range(n):
        phase = rng.uniform(0, period)
        jobs.extend((phase + k * period, chunk_s, False)
                    for k in range(int((seconds - phase) / period) + 1))
        first = rng.uniform(0, stream_s)
        jobs.extend((at, open_s, True) for at in (first + k * stream_s for k in range(
            int(seconds / stream_s) + 1)) if at < seconds)
    jobs.sort()
    waits: tuple[list[float], list[float]] = ([], [])
    free_at = 0.0  # when the server finishes what it has
    for arrival, work, is_open in jobs:
        start = max(arrival, free_at)
        waits[is_open].append(start - arrival)
        free_at = start + work
    return _p99(waits[0]), _p99(waits[1])


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def largest_within(budget_s: float, chunk_s: float, open_s: float, rate: float,
                   stream_s: float, step: int = 10, limit: int = 5000) -> int:
    """The largest n (a multiple of `step`) whose chunk and open p99 waits are within
    `budget_s`; 0 when not even `step` streams are."""
    best, n = 0, step
    while n <= limit and utilisation(n, chunk_s, open_s, rate, stream_s) < 1:
        gap, ttft = simulate(n, chunk_s, open_s, rate, stream_s)
        if max(gap, ttft) > budget_s:
            break
        best, n = n, n + step
    return best


def instance_bound(cores: float, headroom: float, worker_chunk_s: float, worker_open_s: float,
                   host_chunk_s: float, host_open_s: float, rate: float,
                   stream_s: float) -> int:
    """The most streams whose host + worker CPU stays under `headroom` of `cores`."""
    per_stream = utilisation(1, worker_chunk_s + host_chunk_s, worker_open_s + host_open_s,
                             rate, stream_s)
    return int(cores * headroom / per_stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk-us", type=float, default=100.0, help="worker CPU per chunk")
    parser.add_argument("--open-us", type=float, default=2800.0, help="worker CPU per open")
    parser.add_argument("--host-chunk-us", type=float, default=50.0)
    parser.add_argument("--host-open-us", type=float, default=1100.0)
    parser.add_argument("--rate", type=float, default=10.0, help="chunks per second a stream")
    parser.add_argument("--stream-s", type=float, default=20.0)
    parser.add_argument("--budget-ms", type=float, default=10.0)
    parser.add_argument("--cores", type=float, default=1.0)
    parser.add_argument("--headroom", type=float, default=0.7)
    args = parser.parse_args()
    chunk, opened = args.chunk_us / 1e6, args.open_us / 1e6
    best = largest_within(args.budget_ms / 1000, chunk, opened, args.rate, args.stream_s)
    per_stream = utilisation(1, chunk, opened, args.rate, args.stream_s)
    print(f"worker: {per_stream * 1000:.3f} ms of CPU per stream-second; saturated at "
          f"{1 / per_stream:,.0f} streams; p99 waits within {args.budget_ms:g} ms up to "
          f"{best:,} streams (utilisation {best * per_stream:.2f})")
    for n in sorted({max(10, best // 2), best, best + 10 * max(1, best // 100)}):
        gap, ttft = simulate(n, chunk, opened, args.rate, args.stream_s)
        print(f"  {n:5d} streams: utilisation {n * per_stream:.2f}, "
              f"p99 wait: chunk {gap * 1000:.2f} ms, open {ttft * 1000:.2f} ms")
    cap = instance_bound(args.cores, args.headroom, chunk, opened, args.host_chunk_us / 1e6,
                         args.host_open_us / 1e6, args.rate, args.stream_s)
    print(f"instance: host + worker under {args.headroom:g} of {args.cores:g} core(s) up to "
          f"{cap:,} streams; the ceiling is {min(best, cap):,}")


if __name__ == "__main__":
    main()
