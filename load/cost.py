"""What a million requests and a million streamed completions cost on Flex Consumption, from
the benchmarks' JSON (load/results/bench.json from `make bench`, bench_streams.json from
`make bench-streams`).

    .venv/bin/python load/cost.py [--bench ...] [--streams ...] [--concurrency N] [--memory-mb M]

The model (docs/COST.md): Flex Consumption bills an instance's memory (instanceMemoryMB) for the
seconds it executes at least one function, shared by the executions it runs at once, plus each
execution. An instance holds at most `perInstanceConcurrency` executions; each request holds
one for its latency (Little's law), and the instance serves no more than its CPU allows
(measured CPU per request, host + worker, on one core). So per million requests:

    instance-seconds = 1e6 / min(concurrency / latency_s, 1000 / cpu_ms_per_request)

and per million streams of S seconds: 1e6 x S / concurrency (when the CPU per stream allows
that many). Instance-seconds x memory (GB) = GB-s. The best case: instances always full;
a lightly loaded instance executes for a whole request's time with fewer requests in it.
Table Storage transactions per request come from the limiter's own counters (bench.json),
for each limiter mode; the cache's blob/redis operations from its shared-tier counters.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Prices in USD, East US, as published on https://azure.microsoft.com/pricing/details/functions/
# and quoted by the sources in docs/COST.md, looked up 2026-12-06. Check before relying on them.
PRICES = {
    "on_demand_gb_s": 0.000026,        # execution time, on demand
    "on_demand_per_million": 0.40,     # executions, on demand
    "on_demand_free_gb_s": 100_000,    # monthly free grant per subscription (on demand only)
    "on_demand_free_executions": 250_000,
    "always_ready_baseline_gb_s": 0.000004,  # every second an always-ready instance exists
    "always_ready_gb_s": 0.000016,     # execution time on an always-ready instance
    "always_ready_per_million": 0.40,
    "table_per_10k_transactions": 0.00036,   # Table Storage (LRS), see docs/COST.md
    "blob_write_per_10k": 0.05,        # hot tier writes (LRS), see docs/COST.md
    "blob_read_per_10k": 0.004,        # hot tier reads
}
MONTH_S = 30 * 24 * 3600
BICEP = ROOT / "infra/modules/functionapp.bicep"
HEADROOM = 2.0  # instance memory at least twice what the streams were measured to need


def bicep_default(name: str) -> int:
    """The default of `param <name> int = <value>` in the Function App's Bicep module."""
    found = re.search(rf"^param {name} int = (\d+)", BICEP.read_text(), re.M)
    if found is None:
        raise SystemExit(f"cost: no 'param {name} int = ...' in {BICEP}")
    return int(found.group(1))


def memory_needed_mb(level: dict, concurrency: int) -> float:
    """Host + worker at rest plus `concurrency` streams at the measured size, with headroom."""
    rest = level["host_rss_before_mb"] + level["worker_rss_before_mb"]
    return HEADROOM * (rest + concurrency * level["kb_per_stream"] / 1024)


def per_million_requests(cpu_ms: float, latency_s: float, concurrency: int,
                         memory_gb: float) -> dict:
    """Instance-seconds, GB-s and cost of 1e6 requests of `latency_s` each."""
    by_concurrency = concurrency / latency_s
    by_cpu = 1000.0 / cpu_ms
    rate = min(by_concurrency, by_cpu)
    seconds = 1e6 / rate
    return _costs(seconds, memory_gb, 1e6) | {
        "requests_per_instance_s": rate,
        "bound": "concurrency" if by_concurrency < by_cpu else "cpu"}


def per_million_streams(stream_s: float, concurrency: int, cpu_s_per_stream_s: float,
                        memory_gb: float) -> dict:
    """Instance-seconds, GB-s and cost of 1e6 streams of `stream_s` each."""
    held = min(concurrency, 1.0 / max(cpu_s_per_stream_s, 1e-9))  # one core's worth of streams
    seconds = 1e6 * stream_s / held
    return _costs(seconds, memory_gb, 1e6) | {"streams_per_instance": held}


def _costs(instance_s: float, memory_gb: float, executions: float) -> dict:
    gb_s = instance_s * memory_gb
    p = PRICES
    return {"instance_s": instance_s, "gb_s": gb_s,
            "on_demand_usd": gb_s * p["on_demand_gb_s"]
            + executions / 1e6 * p["on_demand_per_million"],
            "always_ready_active_usd": gb_s * p["always_ready_gb_s"]
            + executions / 1e6 * p["always_ready_per_million"]}


def storage(bench: dict) -> dict:
    """Table transactions per request per limiter mode, and their cost per million requests."""
    out = {}
    for name, run in bench["throughput"].items():
        ops = run.get("limiter_storage_per_request")
        if ops is not None:
            per = ops.get("storage_round_trips", 0.0)
            out[name] = {"transactions_per_request": per,
                         "usd_per_million": per * 1e6 / 1e4 * PRICES["table_per_10k_transactions"]}
    out["gateway (limits off)"] = {"transactions_per_request": 0.0, "usd_per_million": 0.0}
    return out


def cache_ops(bench: dict) -> dict:
    """The shared cache tier's operations (blob or redis) per request, from its counters."""
    cache = bench.get("cache") or {}
    tiers = cache.get("tiers") or {}
    shared = {k: v for k, v in tiers.items() if k != "memory"}
    return {"backend": cache.get("backend", "none"), "shared_tiers": shared}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=str(ROOT / "load/results/bench.json"))
    parser.add_argument("--streams", default=str(ROOT / "load/results/bench_streams.json"))
    parser.add_argument("--concurrency", type=int, default=bicep_default("perInstanceConcurrency"),
                        help="perInstanceConcurrency (default: the Bicep's)")
    parser.add_argument("--memory-mb", type=int, default=bicep_default("instanceMemoryMB"),
                        help="instanceMemoryMB (default: the Bicep's)")
    parser.add_argument("--latency-s", type=float, nargs="+", default=[0.04, 2.0],
                        help="request times at the backend: the bench's 30-50 ms, a completion")
    parser.add_argument("--out", default=str(ROOT / "load/results/cost.json"))
    args = parser.parse_args()
    bench = json.loads(Path(args.bench).read_text())
    streams = json.loads(Path(args.streams).read_text())
    chosen = args.concurrency
    gw = bench["throughput"]["gateway (defaults)"]
    # the median across processes (bench_gateway --processes); before it, host + worker
    cpu_ms = gw.get("cpu_ms", gw["host_cpu_ms"] + gw["worker_cpu_ms"])
    level = _level_for(streams, chosen)
    stream_s = streams["args"]["stream_s"]
    cpu_per_stream_s = level["gateway"]["cpu_s"] / (level["n"] * stream_s)
    needed = memory_needed_mb(level["gateway"], chosen)
    memory_gb = args.memory_mb / 1024
    result = {"prices": PRICES, "prices_as_of": "2026-12-06", "concurrency": chosen,
              "memory_mb": args.memory_mb, "cpu_ms_per_request": cpu_ms,
              "cpu_s_per_stream_s": cpu_per_stream_s,
              "kb_per_stream": level["gateway"]["kb_per_stream"], "memory_needed_mb": needed,
              "requests": {f"{lat:g} s, concurrency {c}": per_million_requests(
                  cpu_ms, lat, c, memory_gb) | {"latency_s": lat, "concurrency": c}
                  for lat in args.latency_s for c in (chosen, 64)},
              "streams": {c: per_million_streams(stream_s, c, cpu_per_stream_s, memory_gb)
                          for c in (chosen, 64)},
              "always_ready_baseline_usd_per_instance_month":
                  memory_gb * MONTH_S * PRICES["always_ready_baseline_gb_s"],
              "table_storage": storage(bench), "cache": cache_ops(bench),
              "args": vars(args)}
    print(report(result, args, stream_s))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


def _level_for(streams: dict, concurrency: int) -> dict:
    """The measured level closest to (and not below, when there is one) `concurrency`."""
    levels = sorted(streams["levels"], key=lambda r: r["n"])
    return next((r for r in levels if r["n"] >= concurrency), levels[-1])


def report(r: dict, args, stream_s: float) -> str:
    lines = [f"Flex Consumption, {r['memory_mb']} MB instances (the streams need about "
             f"{r['memory_needed_mb']:.0f} MB with headroom x{HEADROOM:g}, the platform's host "
             f"not counted), prices as of {r['prices_as_of']}"
             f" (USD, East US); CPU {r['cpu_ms_per_request']:.2f} ms per request, "
             f"{r['cpu_s_per_stream_s'] * 1000:.2f} ms CPU per stream-second, "
             f"{r['kb_per_stream']:.0f} KB per stream", "",
             "| traffic | concurrency | per instance | instance-s | GB-s | on demand USD | "
             "always ready (active) USD |", "|---|---:|---:|---:|---:|---:|---:|"]
    for v in r["requests"].values():
        lines.append(f"| 1M requests of {v['latency_s']:g} s | {v['concurrency']} | "
                     f"{v['requests_per_instance_s']:.0f} req/s ({v['bound']}) | "
                     f"{v['instance_s']:.0f} | {v['gb_s']:.0f} | {v['on_demand_usd']:.2f} | "
                     f"{v['always_ready_active_usd']:.2f} |")
    for c, v in r["streams"].items():
        lines.append(f"| 1M streams of {stream_s:g} s | {c} | {v['streams_per_instance']:.0f} "
                     f"streams | {v['instance_s']:.0f} | {v['gb_s']:.0f} | "
                     f"{v['on_demand_usd']:.2f} | {v['always_ready_active_usd']:.2f} |")
    lines += ["", "Always-ready baseline: "
              f"{r['always_ready_baseline_usd_per_instance_month']:.2f} USD per instance-month.",
              "", "| limiter | Table transactions per request | USD per 1M requests |",
              "|---|---:|---:|"]
    lines += [f"| {k} | {v['transactions_per_request']:.4f} | {v['usd_per_million']:.4f} |"
              for k, v in r["table_storage"].items()]
    lines += ["", f"cache: backend {r['cache']['backend']}, "
              f"shared tiers {r['cache']['shared_tiers']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
