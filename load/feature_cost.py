"""What each of the gateway's features costs per request in the worker, beside the ten-line
function (load/tenline), in one run with interleaved rounds.

    .venv/bin/python load/feature_cost.py [--mode both|calls|cpu] [--rate 200]
        [--calls-rate 100] [--seconds 5] [--rounds 4] [--out FILE] [--only NAME ...]
        [--base REV]
        (or: make feature-cost)

The gateway runs in a series of configurations made from its own settings (CONFIGS): the bare
pipeline (every switch that turns a feature off turned off: RATE_LIMIT_ENABLED, CACHE_ENABLED,
TELEMETRY_ENABLED, and one attempt per request, RETRY_MAX_ATTEMPTS=1; left: routing, the
stages without a switch and the httpx upstream), then each feature added alone, then the
defaults (limits on far from binding on Azurite, as `make bench` runs them). Every
configuration and the ten-line function runs on its own local host + worker against the
instant Node simulator, all at once, driven one at a time (rounds interleaved, the order
reversed every other round), with profile_worker_calls.py's harness:

1. calls: the worker under cProfile (load/worker_cprofile), an open loop at --calls-rate
   (fixed, the same arrivals for every target; --calls-rate 0: wrk, 32 connections, closed loop,
   as profile_worker_calls.py's default) for --seconds: Python calls per request, deterministic
   on a busy machine, in total and by where they are (GROUPS);
2. cpu: no profiler, an open loop at --rate for --rounds x --seconds: host and worker CPU ms per
   request (/proc), the median of the rounds.

Each row then gets its difference to the bare pipeline and to the ten-line function, and a
nested feature (the request log, an exporter) its own over the configuration it extends.

The exporter rows send to local receivers only: OTLP to tests/support/otlp_receiver.py, Azure
Monitor (the azure-monitor-opentelemetry path the deployed app takes, since the Bicep sets
APPLICATIONINSIGHTS_CONNECTION_STRING) to tests/support/appinsights_receiver.py, through a
connection string whose ingestion and live endpoints are 127.0.0.1, with the exporter's other
calls (statsbeat, its control-plane poll, the VM metadata detector) turned off. --base REV adds
each exporter row again from that commit's tree (git archive), as `<row> [base]`, in the same
interleaved rounds: the exporter code before and after a change, side by side.
Writes --out (JSON) and the Markdown table beside it (.md), and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, WRK_LUA, host_and_worker, open_loop  # noqa: E402
from profile_worker_calls import HOOK, counted, drive  # noqa: E402

TENLINE = "ten-line"
BARE = "bare"
DEFAULTS = "defaults"
STORAGE = "{storage}"  # replaced by Azurite's connection string at start
OTLP = "{otlp}"  # replaced by the OTLP receiver's URL at start
APPINSIGHTS = "{appinsights}"  # replaced by a connection string to the local receiver at start
BASE = " [base]"  # suffix of a row run from the --base commit's tree
OFF = {"RATE_LIMIT_ENABLED": "false", "CACHE_ENABLED": "false", "TELEMETRY_ENABLED": "false",
       "RETRY_MAX_ATTEMPTS": "1"}
LIMITS = {**FAR, "RATE_LIMIT_STORAGE_CONNECTION": STORAGE}  # as bench_gateway's defaults


@dataclass(frozen=True)
class Config:
    """One gateway: `env` over the settings' defaults; `over` the configuration it adds one
    feature to (its own cost is the difference); `in_defaults`: its feature is part of the
    defaults' sum (additivity check)."""

    name: str
    env: dict[str, str] = field(hash=False)
    over: str = BARE
    in_defaults: bool = False
    note: str = ""
    base: bool = False  # run from the --base commit's tree


def _without(env: dict[str, str], *keys: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in keys}


def configurations(tally: bool = True, otlp: bool = True,
                   appinsights: bool = True) -> tuple[Config, ...]:
    """The gateways measured, bare first and defaults last (the ten-line function is not one)."""
    configs = [
        Config(BARE, dict(OFF), over="",
               note="routing + the stages without a switch + httpx upstream (over aiohttp)"),
        Config("bare, aiohttp-direct", {**OFF, "UPSTREAM_CLIENT": "aiohttp-direct"},
               note="the httpx layer's share: the same, without httpx"),
        Config("+ retries", _without(OFF, "RETRY_MAX_ATTEMPTS"), in_defaults=True,
               note="RETRY_MAX_ATTEMPTS=2 (default): budgets, a retry possible"),
        Config("+ shared breakers (Table)", {**OFF, "RATE_LIMIT_STORAGE_CONNECTION": STORAGE},
               note="routing storage only (RATE_LIMIT_STORAGE_CONNECTION sets it): breaker "
                    "rows read every BREAKER_CACHE_S, the health-check timer"),
        Config("+ limits (in memory)", {**_without(OFF, "RATE_LIMIT_ENABLED"), **FAR},
               note="no storage: one instance's buckets"),
        Config("+ limits (lease, Azurite)", {**_without(OFF, "RATE_LIMIT_ENABLED"), **LIMITS},
               in_defaults=True, note="far from binding; with the shared breakers' storage"),
    ]
    if tally:
        configs.append(Config("+ limits (tally, Azurite)",
                              {**_without(OFF, "RATE_LIMIT_ENABLED"), **LIMITS,
                               "RATE_LIMIT_SYNC": "tally"},
                              note="far from binding; with the shared breakers' storage"))
    telemetry = {**_without(OFF, "TELEMETRY_ENABLED"), "TELEMETRY_REQUEST_LOG": "false"}
    configs += [
        Config("+ cache", _without(OFF, "CACHE_ENABLED"), in_defaults=True,
               note="memory tier; a POST is not cached: the stage's check only"),
        Config("+ telemetry, no request log", telemetry,
               note="ids, traceparent, metrics; no exporter (IdOnlyTracer)"),
        Config("+ telemetry + request log", _without(OFF, "TELEMETRY_ENABLED"),
               over="+ telemetry, no request log", in_defaults=True,
               note="TELEMETRY_REQUEST_LOG=true (default): one JSON line per request"),
    ]
    if otlp:
        configs.append(Config("+ telemetry + OTLP export (10 %)",
                              {**telemetry, "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP},
                              over="+ telemetry, no request log",
                              note="SDK tracer, TELEMETRY_TRACE_SAMPLE_RATIO=0.1 (default), "
                                   "to a local OTLP receiver; no request log"))
    if appinsights:
        configs += [
            Config("+ telemetry + Azure Monitor (10 %)",
                   {**telemetry, "APPLICATIONINSIGHTS_CONNECTION_STRING": APPINSIGHTS},
                   over="+ telemetry, no request log",
                   note="the azure-monitor-opentelemetry path (as deployed), ratio 0.1, to a "
                        "local ingestion receiver; no request log"),
            Config("+ telemetry + request log + Azure Monitor (10 %)",
                   {**_without(OFF, "TELEMETRY_ENABLED"),
                    "APPLICATIONINSIGHTS_CONNECTION_STRING": APPINSIGHTS},
                   over="+ telemetry + request log",
                   note="the deployed telemetry: Azure Monitor with the request log on")]
    configs.append(Config(DEFAULTS, dict(LIMITS), note="as `make bench`'s defaults: limits "
                          "lease far on Azurite, cache, telemetry with the request log, "
                          "retries; no exporter"))
    return tuple(configs)


def with_base(configs: tuple[Config, ...]) -> tuple[Config, ...]:
    """`configs` and, after them, each exporter row again from the --base tree (same settings,
    nested over the same row of the current tree, whose code the exporters do not change)."""
    again = [Config(c.name + BASE, c.env, c.over, False, c.note + " (from --base)", True)
             for c in configs if any(v in (OTLP, APPINSIGHTS) for v in c.env.values())]
    return (*configs[:-1], *again, configs[-1])


def resolved(config: Config, index: int, storage: str = "", otlp: str = "",
             appinsights: str = "") -> dict[str, str]:
    """The configuration's environment with the run's addresses in, and with storage its own
    tables (so no two gateways share limiter or breaker rows: each is one instance). A row with
    the App Insights connection string also gets the environment that keeps the exporter's
    other calls on the machine (appinsights_receiver.LOCAL_ONLY_ENV)."""
    env = {k: v.replace(STORAGE, storage).replace(OTLP, otlp).replace(APPINSIGHTS, appinsights)
           for k, v in config.env.items()}
    if APPINSIGHTS in config.env.values():
        from tests.support.appinsights_receiver import LOCAL_ONLY_ENV
        env.update(LOCAL_ONLY_ENV)
    if STORAGE in config.env.values():
        env.update({"RATE_LIMIT_TABLE": f"ratelimits{index}",
                    "LIMIT_OVERRIDES_TABLE": f"limitoverrides{index}",
                    "ROUTING_TABLE": f"routing{index}"})
    return env


# Where a Python call is (the file keys of by_file: a built-in counts in its caller's file):
# first match wins.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("upstream: httpx and the gateway's adapters", ("httpx/", "httpcore/",
                                                    "function_app/adapters/")),
    ("aiohttp client", ("aiohttp/", "multidict/", "yarl/", "propcache/", "aiohappyeyeballs/",
                        "aiosignal/", "frozenlist/")),
    ("gateway: request/response conversion", ("function_app/http/", "function_app/worker_http.py",
                                              "function_app/app.py")),
    ("gateway: routing", ("function_app/routing/", "function_app/aoai/")),
    ("gateway: pipeline and stages", ("function_app/core/", "function_app/stages/",
                                      "function_app/wiring/")),
    ("gateway: features", ("function_app/ratelimit/", "function_app/cache/",
                           "function_app/telemetry/", "function_app/tenants/",
                           "function_app/guardrails/")),
    ("gateway: other", ("function_app/",)),
    ("FastAPI/Starlette, uvicorn, the HTTP extension", (
        "starlette/", "fastapi/", "azurefunctions/", "pydantic", "anyio/", "sniffio/",
        "uvicorn/", "httptools/", "h11/")),
    ("OpenTelemetry API and SDK", ("opentelemetry/",)),
    ("worker runtime", ("funchost/", "azure_functions_runtime", "azure/functions/", "grpc",
                        "google/protobuf", "proxy_worker", "azure_functions_worker")),
    ("logging", ("/logging/",)),
    ("asyncio", ("/asyncio/",)),
    ("json", ("/json/",)),
    ("built-ins called from C", ("~",)),
)
OTHER = "other (standard library, the rest)"


def group_of(key: str) -> str:
    """The group of a cProfile file key (`profile_worker_calls.rows(..., "file")`)."""
    for name, prefixes in GROUPS:
        if any(key.startswith(p) or (p.startswith("/") and p in key) for p in prefixes):
            return name
    return OTHER


def grouped(table: dict[str, float]) -> dict[str, float]:
    """Calls per request by group, from calls per request by file."""
    out = dict.fromkeys([*(name for name, _ in GROUPS), OTHER], 0.0)
    for key, calls in table.items():
        out[group_of(key)] += calls
    return {k: v for k, v in out.items() if v}


def summary(configs: tuple[Config, ...], calls: dict[str, float] | None,
            cpu: dict[str, dict] | None) -> list[dict]:
    """A row per target (the ten-line function first): calls per request and host + worker CPU
    ms per request, each with its difference to the bare pipeline, to the ten-line function and,
    for a nested feature, to the configuration it extends. `calls` maps a target to its calls
    per request; `cpu` to {"worker_ms", "host_ms"} (medians)."""
    overs = {c.name: c.over for c in configs}
    notes = {c.name: c.note for c in configs}
    names = [TENLINE, *(c.name for c in configs)]

    def total(name: str) -> float | None:
        got = (cpu or {}).get(name)
        return None if got is None else got["worker_ms"] + got["host_ms"]

    def delta(get, a: str, b: str) -> float | None:
        x, y = get(a), get(b) if b else None
        return None if x is None or y is None else x - y

    def count(name: str) -> float | None:
        return (calls or {}).get(name)

    out = []
    for name in names:
        over = overs.get(name, "")
        nested = over if over not in ("", BARE) else ""
        got = (cpu or {}).get(name, {})
        out.append({
            "target": name, "note": notes.get(name, "load/tenline: the floor"),
            "calls": count(name),
            "calls_vs_bare": delta(count, name, BARE),
            "calls_vs_tenline": delta(count, name, TENLINE),
            "worker_ms": got.get("worker_ms"), "host_ms": got.get("host_ms"),
            "cpu_ms": total(name),
            "cpu_vs_bare": delta(total, name, BARE),
            "cpu_vs_tenline": delta(total, name, TENLINE),
            "cpu_ratio_tenline": None if total(name) is None or not total(TENLINE)
            else total(name) / total(TENLINE),
            "over": nested,
            "calls_own": delta(count, name, nested) if nested else None,
            "cpu_own": delta(total, name, nested) if nested else None})
    return out


def additivity(configs: tuple[Config, ...], table: list[dict]) -> dict[str, float | None]:
    """The defaults over bare against the sum of the features in them, each measured alone
    over bare: near each other when the features add up and nothing else differs."""
    by = {r["target"]: r for r in table}
    parts = [c.name for c in configs if c.in_defaults and c.name in by]
    out: dict[str, float | None] = {}
    for key in ("calls", "cpu"):
        values = [by[p][f"{key}_vs_bare"] for p in parts]
        out[f"{key}_sum_alone"] = None if None in values or not values else sum(values)
        out[f"{key}_defaults"] = by.get(DEFAULTS, {}).get(f"{key}_vs_bare")
    return out


def _f(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def markdown(table: list[dict], sums: dict[str, float | None]) -> str:
    """The table: one row per target, then the nested features' own cost and the sum."""
    lines = ["| target | Python calls/req | vs bare | vs ten-line | host + worker CPU ms/req "
             "(worker) | vs bare | vs ten-line | x ten-line |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        lines.append(
            f"| {r['target']} | {_f(r['calls'], 0)} | {_f(r['calls_vs_bare'], 0, True)} | "
            f"{_f(r['calls_vs_tenline'], 0, True)} | {_f(r['cpu_ms'], 3)} "
            f"({_f(r['worker_ms'], 3)}) | {_f(r['cpu_vs_bare'], 3, True)} | "
            f"{_f(r['cpu_vs_tenline'], 3, True)} | {_f(r['cpu_ratio_tenline'], 2)} |")
    nested = [r for r in table if r["over"]]
    if nested:
        lines += ["", "| feature | over | own calls/req | own CPU ms/req |", "|---|---|---:|---:|"]
        lines += [f"| {r['target']} | {r['over']} | {_f(r['calls_own'], 0, True)} | "
                  f"{_f(r['cpu_own'], 3, True)} |" for r in nested]
    lines += ["", f"defaults over bare: {_f(sums.get('calls_defaults'), 0, True)} calls/req, "
              f"{_f(sums.get('cpu_defaults'), 3, True)} CPU ms/req; the features in them "
              f"measured alone add up to {_f(sums.get('calls_sum_alone'), 0, True)} calls/req, "
              f"{_f(sums.get('cpu_sum_alone'), 3, True)} CPU ms/req"]
    return "\n".join(lines)


def group_table(groups: dict[str, dict[str, float]], targets: list[str]) -> str:
    """Calls per request by group for `targets` (columns), and the first two's difference."""
    keys = [name for name, _ in GROUPS] + [OTHER]
    keys = [k for k in keys if any(groups[t].get(k) for t in targets)]
    head = " | ".join(targets)
    lines = [f"| where (calls/req) | {head} | {targets[1]} - {targets[0]} |",
             "|---|" + "---:|" * (len(targets) + 1)]
    for k in keys:
        values = [groups[t].get(k, 0.0) for t in targets]
        lines.append(f"| {k} | " + " | ".join(f"{v:.1f}" for v in values)
                     + f" | {values[1] - values[0]:+.1f} |")
    totals = [sum(groups[t].values()) for t in targets]
    lines.append("| **total** | " + " | ".join(f"{v:.1f}" for v in totals)
                 + f" | {totals[1] - totals[0]:+.1f} |")
    return "\n".join(lines)


def shortfalls(phases: dict[str, dict], rates: dict[str, int]) -> list[str]:
    """Lines naming the rounds with failed requests or below 0.9 x their phase's rate (an open
    loop on a busy machine falls behind); `phases` maps a phase to {target: rounds or
    {"errors": [...], "achieved_rps": [...]}}."""
    lines = []
    for phase, targets in phases.items():
        for name, got in targets.items():
            rounds = got if isinstance(got, list) else [
                {"errors": e, "achieved_rps": a}
                for e, a in zip(got["errors"], got["achieved_rps"], strict=True)]
            failed = sum(r["errors"] or 0 for r in rounds)
            slow = [r["achieved_rps"] for r in rounds if r["achieved_rps"] is not None
                    and r["achieved_rps"] < 0.9 * rates[phase]]
            if failed:
                lines.append(f"{phase}, {name}: {failed} failed requests")
            if slow:
                lines.append(f"{phase}, {name}: {len(slow)} of {len(rounds)} rounds below "
                             f"0.9 x {rates[phase]}/s ({', '.join(f'{x:.0f}' for x in slow)})")
    return lines or ["every round kept its rate, no failed requests"]


def by_file(stats: dict, requests: int) -> dict[str, float]:
    """Calls per request by source file (keys as profile_worker_calls.rows makes them), a
    built-in's calls counted in the file of the Python function that called it (`stats` as
    pstats.Stats(...).stats holds them: the callers' first figure is their call count); calls
    of a built-in from no Python caller stay under "~"."""
    table: dict[str, float] = {}

    def add(key: str, calls: float) -> None:
        table[key] = table.get(key, 0.0) + calls / requests

    for (path, _line, _name), (_cc, calls, _own, _cum, callers) in stats.items():
        if path != "~":
            add(_short(path), calls)
            continue
        left = calls
        for (caller, _l, _n), figures in callers.items():
            counted = figures[0] if isinstance(figures, tuple) else figures
            add(_short(caller), counted)
            left -= counted
        if left > 0:
            add("~", left)
    return table


def _short(path: str) -> str:
    if "site-packages" in path:
        return path.split("site-packages/")[-1]
    if "/base/function_app/" in path:  # a --base tree's file: grouped as the current one's
        return "function_app/" + path.split("/base/function_app/", 1)[1]
    return path.replace(str(ROOT) + "/", "")


# --- running (processes; not unit-tested) ---

def start(configs: tuple[Config, ...], logs: Path, out: Path, mode: str,
          base: str | None = None) -> tuple[list, dict]:
    """The simulator, Azurite and the exporters' receivers when a configuration needs them, the
    ten-line function and each gateway (with the profiling hook in `mode`; a base row from the
    tree of commit `base`)."""
    from scripts.azurite import Azurite
    from scripts.procs import (
        HOST_CMD,
        INSTANT,
        PYTHON,
        WORKER_ENV,
        export_tree,
        free_port,
        spawn,
        spawn_node,
    )
    from tests.support.appinsights_receiver import connection_string

    procs = [spawn_node("backend", logs, INSTANT)]
    backend = procs[0]
    values = [v for c in configs for v in c.env.values()]
    storage = otlp = appinsights = ""
    if STORAGE in values:
        procs.append(Azurite(logs / "azurite").start())
        storage = procs[-1].connection_string
    if OTLP in values:
        port = free_port()
        procs.append(spawn("otlp-receiver", [PYTHON, "-m", "tests.support.otlp_receiver",
                                             "--port", str(port)], port=port, log_dir=logs))
        otlp = procs[-1].url
    if APPINSIGHTS in values:
        port = free_port()
        procs.append(spawn(f"appinsights-receiver-{mode}",
                           [PYTHON, "-m", "tests.support.appinsights_receiver",
                            "--port", str(port)], port=port, log_dir=logs))
        appinsights = connection_string(procs[-1].url)
    base_tree = None
    if base and any(c.base for c in configs):
        (logs / f"base-{mode}").mkdir()
        base_tree = export_tree(base, logs / f"base-{mode}")
    hook = {"PYTHONPATH": HOOK, "WORKER_CPROFILE_OUT": str(out),
            **({"WORKER_CPROFILE_GC_ONLY": "1"} if mode != "calls" else {})}
    port = free_port()
    targets = {TENLINE: spawn(f"{mode}-ten-line", [*HOST_CMD, "--app-dir",
                                                    str(ROOT / "load/tenline")],
                              port=port, log_dir=logs, ready_path=None,
                              env={**WORKER_ENV, **hook, "PORT": str(port),
                                   "BACKEND_URL": backend.url})}
    procs.append(targets[TENLINE])
    for index, config in enumerate(configs):
        port = free_port()
        slug = "".join(ch if ch.isalnum() else "-" for ch in config.name).strip("-")
        targets[config.name] = spawn(
            f"{mode}-{index}-{slug}", HOST_CMD, port=port, log_dir=logs, timeout=120,
            cwd=base_tree if config.base else None,
            env={**WORKER_ENV, **resolved(config, index, storage, otlp, appinsights), **hook,
                 "PORT": str(port), "NODE_SERVICE_URL": backend.url})
        procs.append(targets[config.name])
    urls = {name: proc.url + ("/infer" if name == TENLINE else "/infer/node")
            for name, proc in targets.items()}
    pids = {name: host_and_worker(proc) for name, proc in targets.items()}
    return procs, {"urls": urls, "pids": pids}


def run_phase(configs: tuple[Config, ...], args: argparse.Namespace, mode: str,
              logs: Path) -> dict[str, list[dict]]:
    """Every target's rounds in `mode` (calls: one profiled round each; cpu: --rounds), the
    order reversed every other round, after a 3 s warm-up each; as profile_worker_calls.py's
    `measure`, but a failed request is counted in its round (`errors`), not fatal, and each
    round keeps the rate the open loop achieved."""
    out = logs / f"prof-{mode}"
    out.mkdir()
    script = logs / "post.lua"
    script.write_text(WRK_LUA)
    procs, got = start(configs, logs, out, mode, args.base)
    urls, pids = got["urls"], got["pids"]
    rate = args.calls_rate if mode == "calls" else args.rate
    rounds = 1 if mode == "calls" else args.rounds
    last: dict[str, dict] = {}

    def load(url: str, seconds: int) -> int:
        if not rate:
            last.update(errors=0, achieved_rps=None)
            return drive(url, seconds, args.connections, script)
        done = asyncio.run(open_loop(url, rate, seconds))
        last.update(errors=done["errors"], achieved_rps=round(done["achieved_rps"], 1))
        return len(done["latencies"])

    runs: dict[str, list[dict]] = {name: [] for name in urls}
    try:
        for url in urls.values():
            load(url, 3)  # warm-up
        for k in range(rounds):
            for name in (list(urls) if k % 2 == 0 else list(urls)[::-1]):
                one = counted(pids[name], out, lambda u=urls[name]: load(u, args.seconds))
                if one["profile"] is not None:
                    one["profile"] = one["profile"].rename(out / f"{mode}-{name}-{k}.prof")
                runs[name].append({**one, **last})
    finally:
        for proc in reversed(procs):
            proc.stop()
    return runs


def calls_of(runs: dict[str, list[dict]]) -> tuple[dict[str, float], dict[str, dict],
                                                    dict[str, dict], dict[str, list[dict]]]:
    """Calls per request per target, by group and by file (mean of its profiled rounds), and
    the requests each round counted (time-based work, such as storage reads on a timer, is
    spread over them: its share per request falls as the rate rises)."""
    totals, groups, files, requests = {}, {}, {}, {}
    for name, got in runs.items():
        requests[name] = [{k: r[k] for k in ("requests", "achieved_rps", "errors")}
                          for r in got]
        table: dict[str, float] = {}
        for r in got:
            for key, c in by_file(pstats.Stats(str(r["profile"])).stats, r["requests"]).items():
                table[key] = table.get(key, 0.0) + c / len(got)
        totals[name] = sum(table.values())
        groups[name] = grouped(table)
        files[name] = dict(sorted(table.items(), key=lambda kv: -kv[1]))
    return totals, groups, files, requests


def cpu_of(runs: dict[str, list[dict]]) -> dict[str, dict]:
    return {name: {"worker_ms": statistics.median(r["worker_ms"] for r in got),
                   "host_ms": statistics.median(r["host_ms"] for r in got),
                   "worker_ms_runs": [r["worker_ms"] for r in got],
                   "host_ms_runs": [r["host_ms"] for r in got],
                   "requests": [r["requests"] for r in got],
                   "achieved_rps": [r["achieved_rps"] for r in got],
                   "errors": [r["errors"] for r in got]}
            for name, got in runs.items()}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("both", "calls", "cpu"), default="both")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4, help="CPU rounds per target")
    parser.add_argument("--rate", type=int, default=200, help="open loop of the CPU rounds")
    parser.add_argument("--calls-rate", type=int, default=100,
                        help="open loop of the profiled round; 0: wrk (closed loop)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's, --calls-rate 0")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="only this configuration (repeatable; bare and defaults stay)")
    parser.add_argument("--no-tally", action="store_true")
    parser.add_argument("--no-otlp", action="store_true")
    parser.add_argument("--no-appinsights", action="store_true",
                        help="leave out the Azure Monitor rows (local ingestion receiver)")
    parser.add_argument("--base", default=None, metavar="REV",
                        help="also each exporter row from this commit's tree, as `<row> [base]`")
    parser.add_argument("--out", default=str(ROOT / "load/results/feature_cost.json"))
    return parser.parse_args(argv)


def chosen(args: argparse.Namespace) -> tuple[Config, ...]:
    configs = configurations(tally=not args.no_tally, otlp=not args.no_otlp,
                             appinsights=not args.no_appinsights)
    if args.only:
        keep = {BARE, DEFAULTS, *args.only}
        picked = tuple(c for c in configs if c.name in keep)
        configs = tuple(c if c.over in keep or not c.over else Config(c.name, c.env, BARE,
                                                                       c.in_defaults, c.note)
                        for c in picked)
    return with_base(configs) if getattr(args, "base", None) else configs


def main() -> int:
    args = arguments()
    configs = chosen(args)
    logs = Path(tempfile.mkdtemp(prefix="feature-cost-"))
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = {"before": os.getloadavg()}
    calls = groups = files = profiled = cpu = None
    if args.mode in ("both", "calls"):
        calls, groups, files, profiled = calls_of(run_phase(configs, args, "calls", logs))
        load["after_calls"] = os.getloadavg()
    if args.mode in ("both", "cpu"):
        cpu = cpu_of(run_phase(configs, args, "cpu", logs))
        load["after_cpu"] = os.getloadavg()
    table = summary(configs, calls, cpu)
    sums = additivity(configs, table)
    driver = f"open loop at {args.calls_rate}/s" if args.calls_rate else \
        f"wrk {args.connections} connections"
    text = [f"{began}; calls: cProfile, {driver}, {args.seconds} s per target; CPU: open loop "
            f"at {args.rate}/s, median of {args.rounds} x {args.seconds} s per target (rounds "
            f"interleaved); load average (1 min) " +
            ", ".join(f"{k} {v[0]:.2f}" for k, v in load.items()), "", markdown(table, sums)]
    if groups:
        text += ["", group_table(groups, [TENLINE, BARE, DEFAULTS])]
    text += ["", *shortfalls({"calls": profiled or {}, "CPU": cpu or {}},
                             {"calls": args.calls_rate, "CPU": args.rate})]
    report = "\n".join(text)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(
        {"date": began, "args": vars(args), "load_average": load,
         "configs": [asdict(c) for c in configs], "rows": table, "additivity": sums,
         "calls_by_group": groups, "calls_by_file": files,
         "calls_requests": profiled, "cpu": cpu,
         "logs": str(logs)}, indent=2))
    out.with_suffix(".md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
