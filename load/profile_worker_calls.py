"""Inside the real worker (funchost.worker, azure-functions-runtime): Python calls per request
(cProfile's deterministic counts, which a noisy shared machine does not move) or CPU and
garbage-collection time per request, the gateway beside load/tenline's ten-line function.

    .venv/bin/python load/profile_worker_calls.py [--mode calls|cpu] [--seconds 5]
        [--rounds 1] [--limits off|far] [--top 40] [--by file|function] [--upstream KIND]
        [--profile-host] [--rate RPS] [--base REV]

Each function runs on its own local host + worker against the instant Node simulator; the
worker loads load/worker_cprofile/sitecustomize.py (PYTHONPATH), which counts between SIGUSR1
and SIGUSR2. After a warm-up, wrk drives one target at a time (rounds interleaved) and the
requests wrk completed divide the counts. --mode calls prints calls and own time (under
cProfile, so inflated; read it as shares) per request for each target, then the rows whose
calls or own time per request differ most; --mode cpu (no cProfile) prints worker and host CPU
ms per request (/proc) and the worker's garbage-collection time per request, and per generation
the collections, the collecting thread's CPU, the longest pause, the objects walked and freed
(--gc-kinds: what young collections walk, by kind; --gc-roots: which young objects are held
from outside, and by what); --mode garbage prints the objects only the cycle collector freed,
by kind, and writes one reference cycle of a few kinds (<pid>.cycles.txt in the run's folder).

--profile-host profiles (and times garbage collection in) the local host instead of the worker:
the hook is on the host's PYTHONPATH too, so the signals go to the host's pid. --rate RPS drives
each target with bench_gateway's open loop at a fixed rate instead of wrk's closed loop, so both
targets get the same requests per second (a closed loop gives the faster one more requests per
wake-up of the host, which lowers its CPU per request by itself).

With --base REV, the gateway of that commit (`git archive`, run from its own folder as
bench_streams.py --base runs it) is a third target, `gateway base`, and the calls report
compares it with the gateway too: with REV the working tree's own commit, a control of where
the gateway runs from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, WRK_LUA, cpu_seconds, host_and_worker, open_loop  # noqa: E402

from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import (  # noqa: E402
    HOST_CMD,
    INSTANT,
    WORKER_ENV,
    export_tree,
    free_port,
    spawn,
    spawn_node,
)

HOOK = str(ROOT / "load/worker_cprofile")


def drive(url: str, seconds: int, connections: int, script: Path) -> int:
    """Requests wrk completed against `url` in `seconds`."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def paced(url: str, seconds: int, rate: int) -> int:
    """Requests answered 200 by `url` under an open loop at `rate` per second (bench_gateway's)."""
    got = asyncio.run(open_loop(url, rate, seconds))
    if got["errors"]:
        raise RuntimeError(f"{got['errors']} failed requests to {url}")
    if got["achieved_rps"] < 0.9 * rate:
        print(f"warning: {url} kept {got['achieved_rps']:.0f} of {rate} requests/s")
    return len(got["latencies"])


def wakeups(pid: int) -> dict[str, int]:
    """A process's read and write system calls (/proc/<pid>/io) and voluntary context switches
    (its sleeps: wake-ups of its event loop) so far."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    status = Path(f"/proc/{pid}/status").read_text()
    switches = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return {"reads": int(io["syscr"]), "writes": int(io["syscw"]), "sleeps": switches}


def counted(pids: tuple[int, int], out: Path, run, profiled: int | None = None) -> dict:
    """What the hook counted in the worker (or the process `profiled`, the host's pid) while
    `run()` drove it: requests, CPU of host and worker, garbage collection, and the profile's
    path (when it made one)."""
    host, worker = pids
    profiled = worker if profiled is None else profiled
    for stale in out.glob(f"{profiled}.*"):
        stale.unlink()
    os.kill(profiled, signal.SIGUSR1)
    time.sleep(0.2)
    before = [cpu_seconds(host), cpu_seconds(worker)]
    calls_before = wakeups(host)
    done = run()
    used = [cpu_seconds(host) - before[0], cpu_seconds(worker) - before[1]]
    host_calls = {k: (n - calls_before[k]) / done for k, n in wakeups(host).items()}
    os.kill(profiled, signal.SIGUSR2)
    gc_file = out / f"{profiled}.gc.json"
    for _ in range(200):
        if gc_file.exists() and gc_file.stat().st_size:
            break
        time.sleep(0.1)
    gc_stats = json.loads(gc_file.read_text())
    prof = out / f"{profiled}.prof"
    rss_kb = int(Path(f"/proc/{worker}/status").read_text().split("VmRSS:")[1].split()[0])
    return {"requests": done, "rss_mb": rss_kb / 1024, "host_ms": used[0] * 1000 / done,
            "worker_ms": used[1] * 1000 / done, "host_syscalls": host_calls,
            "gc_us": [s * 1e6 / done for s in gc_stats["seconds"]],
            "gc_per_1000": [c * 1000 / done for c in gc_stats["count"]],
            "garbage": {k: n / done for k, n in gc_stats["garbage"].items()},
            "grown": {k: n / done for k, n in gc_stats["grown"].items()},
            "objects": gc_stats["objects"],
            "finalised": {k: n / done for k, n in gc_stats["finalised"].items()},
            "gc_thread_us": [s * 1e6 / done for s in gc_stats["thread"]],
            "gc_max_ms": [s * 1000 for s in gc_stats["max"]],
            "gc_count": gc_stats["count"], "gc_collected": gc_stats["collected"],
            "gc_walked": gc_stats["walked"],
            "gc_max_walked": gc_stats["max_walked"], "generations": gc_stats["generations"],
            "frozen": gc_stats["frozen"], "young_kinds": gc_stats["young_kinds"],
            "tallied": gc_stats["tallied"],
            "threshold": gc_stats["threshold"],
            "profile": prof if prof.exists() else None}


def rows(stats: pstats.Stats, requests: int, by: str) -> dict[str, tuple[float, float]]:
    """Calls and own microseconds per request, per function or per source file."""
    table: dict[str, list[float]] = {}
    for (path, line, name), (_cc, calls, own, _cum, _callers) in stats.stats.items():
        short = path.split("site-packages/")[-1] if "site-packages" in path \
            else path.replace(str(ROOT) + "/", "")
        key = short if by == "file" else f"{short}:{line}({name})"
        entry = table.setdefault(key, [0.0, 0.0])
        entry[0] += calls / requests
        entry[1] += own * 1e6 / requests
    return {k: (v[0], v[1]) for k, v in table.items()}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("calls", "cpu", "garbage"), default="calls")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--limits", choices=("off", "far"), default="off")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--by", choices=("file", "function"), default="function")
    parser.add_argument("--base", default=None,
                        help="also the gateway of this commit (git archive), as `gateway base`")
    parser.add_argument("--upstream", default="aiohttp",
                        help="the gateway's UPSTREAM_CLIENT (aiohttp, the default; httpx; "
                        "aiohttp-direct)")
    parser.add_argument("--profile-host", action="store_true",
                        help="profile the local host instead of the worker")
    parser.add_argument("--gc-kinds", action="store_true",
                        help="--mode cpu: also what young collections walk, by kind (slow)")
    parser.add_argument("--gc-roots", action="store_true",
                        help="--mode cpu: twice, which young objects are held from outside the "
                        "young generation and by what (<pid>.roots.txt in the run's prof folder)")
    parser.add_argument("--rate", type=int, default=0,
                        help="drive each target at this fixed rate (open loop), not with wrk")
    return parser.parse_args()


def start(args: argparse.Namespace, logs: Path, out: Path) -> tuple[list, dict[str, str]]:
    """The simulator, Azurite (--limits far), the gateway and the ten-line function."""
    procs = [spawn_node("backend", logs, INSTANT)]
    backend = procs[0]
    extra = {"RATE_LIMIT_ENABLED": "false", "UPSTREAM_CLIENT": args.upstream}
    if args.limits == "far":
        procs.append(Azurite(logs / "azurite").start())
        extra = {**FAR, "RATE_LIMIT_STORAGE_CONNECTION": procs[-1].connection_string,
                 "UPSTREAM_CLIENT": args.upstream}
    hook = {"PYTHONPATH": HOOK, "WORKER_CPROFILE_OUT": str(out),
            **({"WORKER_CPROFILE_GC_ONLY": "1"} if args.mode != "calls" else {}),
            **({"WORKER_CPROFILE_GARBAGE": "1"} if args.mode == "garbage" else {}),
            **({"WORKER_CPROFILE_GCKINDS": "1"} if args.gc_kinds else {}),
            **({"WORKER_CPROFILE_GCROOTS": "1"} if args.gc_roots else {})}
    port = free_port()
    gateway = spawn("gateway", HOST_CMD, port=port, log_dir=logs, timeout=120,
                    env={**WORKER_ENV, **extra, **hook, "PORT": str(port),
                         "NODE_SERVICE_URL": backend.url})
    port = free_port()
    tenline = spawn("ten-line", [*HOST_CMD, "--app-dir", str(ROOT / "load/tenline")],
                    port=port, log_dir=logs, ready_path=None,
                    env={**WORKER_ENV, **hook, "PORT": str(port), "BACKEND_URL": backend.url})
    procs += [gateway, tenline]
    urls = {"gateway": gateway.url + "/infer/node", "ten-line": tenline.url + "/infer"}
    if args.base:  # the same settings, from the commit's exported folder (host and worker)
        port = free_port()
        procs.append(spawn("gateway-base", HOST_CMD, port=port, log_dir=logs, timeout=120,
                           cwd=export_tree(args.base, logs),
                           env={**WORKER_ENV, **extra, **hook, "PORT": str(port),
                                "NODE_SERVICE_URL": backend.url}))
        urls["gateway base"] = procs[-1].url + "/infer/node"
    return procs, urls


def measure(args: argparse.Namespace, urls: dict, pids: dict, out: Path,
            script: Path) -> dict[str, list[dict]]:
    """Each target's rounds, interleaved (order reversed every other round)."""
    def load(url: str, seconds: int) -> int:
        return paced(url, seconds, args.rate) if args.rate else \
            drive(url, seconds, args.connections, script)

    for url in urls.values():
        load(url, 3)  # warm-up
    runs: dict[str, list[dict]] = {name: [] for name in urls}
    for k in range(args.rounds):
        for name in (list(urls) if k % 2 == 0 else list(urls)[::-1]):
            profiled = pids[name][0] if args.profile_host else None
            got = counted(pids[name], out, lambda u=urls[name]: load(u, args.seconds),
                          profiled)
            if got["profile"] is not None:
                got["profile"] = got["profile"].rename(out / f"{name}-{k}.prof")
            runs[name].append(got)
    return runs


def main() -> int:
    args = arguments()
    logs = Path(tempfile.mkdtemp(prefix="worker-calls-"))
    out = logs / "prof"
    out.mkdir()
    script = logs / "post.lua"
    script.write_text(WRK_LUA)
    procs, urls = start(args, logs, out)
    try:
        pids = {name: host_and_worker(proc)
                for name, proc in zip(urls, procs[-len(urls):], strict=True)}
        runs = measure(args, urls, pids, out, script)
    finally:
        for proc in reversed(procs):
            proc.stop()
    driver = f"open loop at {args.rate} requests/s" if args.rate else \
        f"wrk {args.connections} connections"
    print(f"limits {args.limits}, UPSTREAM_CLIENT={args.upstream}, {driver}, "
          f"{'host' if args.profile_host else 'worker'} profiled, {args.rounds} x "
          f"{args.seconds} s per target, load average {os.getloadavg()[0]:.1f}")
    report = {"cpu": cpu_report, "garbage": garbage_report, "calls": calls_report}[args.mode]
    print(report(runs, args))
    return 0


def garbage_report(runs: dict[str, list[dict]], args: argparse.Namespace) -> str:
    """Per request, by kind (first round): objects only the cycle collector freed, and objects
    still alive at the end that were not at the start (a leak, or caches filling)."""
    lines = []
    for name, got in runs.items():
        for what, table in (("in cycles (garbage)", got[0]["garbage"]),
                            ("more alive at the end", got[0]["grown"])):
            lines += ["", f"{name}: {sum(table.values()):.2f} objects per request {what}; "
                      f"tracked objects {' -> '.join(map(str, got[0]['objects']))}"]
            lines += [f"{n:8.3f}  {k}" for k, n in sorted(table.items(), key=lambda kv: -kv[1])
                      [:args.top]]
    return "\n".join(lines)


def cpu_report(runs: dict[str, list[dict]], _args: argparse.Namespace) -> str:
    """Medians of the rounds: CPU ms per request and garbage collection per request."""
    lines = []
    for name, got in runs.items():
        med = {key: statistics.median(r[key] for r in got) for key in ("worker_ms", "host_ms")}
        gc_us = [statistics.median(r["gc_us"][g] for r in got) for g in range(3)]
        gc_n = [statistics.median(r["gc_per_1000"][g] for r in got) for g in range(3)]
        finalised = {k: round(n, 2) for k, n in got[0]["finalised"].items()}
        lines.append(f"{name}: async generators left to the loop per request: {finalised}")
        lines.append(f"{name}: worker {med['worker_ms']:.3f} ms/req (rounds "
                     f"{', '.join(f'{r['worker_ms']:.3f}' for r in got)}), host "
                     f"{med['host_ms']:.3f}; gc {sum(gc_us):.1f} us/req (young, middle, old: "
                     f"{', '.join(f'{x:.1f}' for x in gc_us)} us; per 1,000 requests "
                     f"{', '.join(f'{x:.1f}' for x in gc_n)} collections); worker RSS "
                     f"{got[0]['rss_mb']:.1f} -> {got[-1]['rss_mb']:.1f} MB over "
                     f"{sum(r['requests'] for r in got)} requests")
        lines.append(f"{name}: {gc_generations(got)}")
        kinds, (young, took) = got[0]["young_kinds"], got[0]["tallied"]
        if kinds and young:
            lines.append(f"{name}: a young collection walks, by kind (objects, referents; "
                         f"{young} tallied, {took * 1000 / young:.0f} ms a tally):")
            lines += [f"{n / young:9.0f} {refs / young:9.0f}  {kind}" for kind, (n, refs) in
                      sorted(kinds.items(), key=lambda kv: -kv[1][1])[:_args.top]]
        host = {k: statistics.median(r["host_syscalls"][k] for r in got)
                for k in ("reads", "writes", "sleeps")}
        lines.append(f"{name}: host per request: {host['reads']:.2f} reads, {host['writes']:.2f} "
                     f"writes (system calls), {host['sleeps']:.2f} sleeps (voluntary switches)")
    return "\n".join(lines)


def gc_generations(got: list[dict]) -> str:
    """Per generation over all rounds: collections, the collecting thread's CPU per request and
    its longest pause, objects walked per collection (mean and most); the generations' sizes and
    the frozen objects at the end of the last round, and the thresholds."""
    requests = sum(r["requests"] for r in got)
    parts = []
    for g, name in enumerate(("young", "middle", "old")):
        count = sum(r["gc_count"][g] for r in got)
        thread_us = sum(r["gc_thread_us"][g] * r["requests"] for r in got) / requests
        walked = sum(r["gc_walked"][g] for r in got)
        freed = sum(r["gc_collected"][g] for r in got)
        parts.append(f"{name} {count} x, {thread_us:.1f} us/req (thread), max "
                     f"{max(r['gc_max_ms'][g] for r in got):.2f} ms, walked "
                     f"{walked / count if count else 0:,.0f}/collection (max "
                     f"{max(r['gc_max_walked'][g] for r in got):,}), "
                     f"freed {freed / requests:.2f}/req")
    last = got[-1]
    return (f"gc per generation: {'; '.join(parts)}; generations at end "
            f"{', '.join(f'{n:,}' for n in last['generations'])}, frozen {last['frozen']:,}, "
            f"thresholds {tuple(last['threshold'])}")


def calls_report(runs: dict[str, list[dict]], args: argparse.Namespace) -> str:
    """Per target the totals; then the rows that differ most, by calls and by own time."""
    tables = {}
    lines = []
    for name, got in runs.items():
        table: dict[str, list[float]] = {}
        for r in got:
            for key, (c, t) in rows(pstats.Stats(str(r["profile"])), r["requests"],
                                    args.by).items():
                entry = table.setdefault(key, [0.0, 0.0])
                entry[0] += c / len(got)
                entry[1] += t / len(got)
        tables[name] = table
        lines.append(f"{name}: {sum(r['requests'] for r in got)} requests, "
                     f"{sum(c for c, _ in table.values()):.0f} Python calls and "
                     f"{sum(t for _, t in table.values()):.0f} us own time (under cProfile) "
                     f"per request; profiles: {', '.join(str(r['profile']) for r in got)}")
    for other in [name for name in tables if name != "gateway"]:
        lines += differing(tables["gateway"], tables[other], other, args.top)
    return "\n".join(lines)


def differing(gate: dict, ten: dict, other: str, top: int) -> list[str]:
    """The rows whose calls or own time per request differ most between the gateway and
    `other` (the ten-line function, or the gateway of --base)."""
    if other != "ten-line":  # the same code from another folder: its paths, not its rows
        gate, ten = _unrooted(gate), _unrooted(ten)
    keys = set(gate) | set(ten)
    zero = (0.0, 0.0)
    by_calls = sorted(keys, key=lambda k: -abs(gate.get(k, zero)[0] - ten.get(k, zero)[0]))
    by_own = sorted(keys, key=lambda k: -(gate.get(k, zero)[1] - ten.get(k, zero)[1]))
    lines = ["", f"calls/req gateway, {other}; own us/req gateway, {other}:"]
    for key in dict.fromkeys(by_calls[:top] + by_own[:top]):
        g, t = gate.get(key, zero), ten.get(key, zero)
        lines.append(f"{g[0]:8.2f} {t[0]:8.2f} {g[1]:8.1f} {t[1]:8.1f}  {key}")
    return lines


def _unrooted(table: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Rows keyed without the folder the tree ran from (the export's is a temporary one) and
    without the addresses in built-ins' names, summed where they then coincide."""
    out: dict[str, list[float]] = {}
    for key, (calls, own) in table.items():
        short = re.sub(r" at 0x[0-9a-f]+", "", key.split("/base/")[-1])
        entry = out.setdefault(short, [0.0, 0.0])
        entry[0] += calls
        entry[1] += own
    return {k: (v[0], v[1]) for k, v in out.items()}


if __name__ == "__main__":
    sys.exit(main())
