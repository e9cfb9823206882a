"""CPU instructions per request in the real worker (and optionally the local host), counted by
valgrind's callgrind: a deterministic figure where this shared machine's timings are too noisy
to resolve the tens of microseconds that limits on add over limits off.

    .venv/bin/python load/instructions_per_request.py [--requests 2000] [--warmup 300]
        [--idle 20] [--connections 8] [--targets far off ten-line] [--base REV]
        [--process worker|host|both] [--bytecodes] [--env TARGET:KEY=VALUE] [--top 30]
        [--json FILE]

`--bytecodes` counts Python bytecodes per function instead (no valgrind; sys.monitoring in
load/worker_bytecodes/sitecustomize.py, switched by SIGUSR1/SIGUSR2 in whichever process is
measured), with the same windows and arithmetic: the Python-level split that callgrind cannot
give on CPython 3.13, where Python functions are not C frames.

Each target runs as load/profile_worker_calls.py starts it (funchost host + the real worker,
the instant Node simulator behind it): `far` is the gateway with limits on far from binding
(bench_gateway's FAR, lease mode on its own Azurite, as `make bench`'s defaults), `off` the
gateway with RATE_LIMIT_ENABLED=false, `ten-line` load/tenline's function; `--base REV` adds
`far base` and `off base`, the gateway of that commit (git archive). The host starts its worker
under `valgrind --tool=callgrind --instr-atstart=no` (funchost/workerproc.py's
FUNCHOST_WORKER_WRAPPER), PYTHONHASHSEED=0. Once every target is up, one target at a time:
instrumentation on, --warmup requests, then three windows, each zeroed and dumped with
callgrind_control:

- idle (--idle seconds, no traffic): the instructions per second of timers and upkeep;
- requests: exactly --requests POSTs of bench_gateway's body over --connections keep-alive
  connections (every answer must be 200);
- idle again.

Instructions per request = (requests window - idle rate x its wall time) / requests, with the
mean of the two idle rates. Per C function the same arithmetic on each function's own
(exclusive) count, then the functions whose per-request counts differ most between the targets
(`far` against `off`, `off` against `ten-line`, each tree against its base). Instructions are
not cycles (cache misses, the kernel's share of system calls are not in them): a gap in them is
a gap in work done. The worker runs 20-50 times slower under valgrind, so the limiter sees a low
rate: its storage round trips per request (from /_gateway/stats) are printed beside, since a
lease's size follows the demand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, host_and_worker, stats_of  # noqa: E402

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

BODY = b'{"prompt": "benchmark"}'
CALLGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
             "--dump-line=no", "--compress-strings=no", "--compress-pos=no"]
PRESETS = ("far", "off", "ten-line", "far-mem", "off-store")
DEFAULT_TARGETS = ("far", "off", "ten-line")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of each idle window")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--targets", nargs="+", choices=PRESETS,
                        default=list(DEFAULT_TARGETS))
    parser.add_argument("--base", default=None, help="also the gateway(s) of this commit")
    parser.add_argument("--process", choices=("worker", "host", "both"), default="worker",
                        help="which processes run under callgrind")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--bytecodes", action="store_true",
                        help="count Python bytecodes by function (load/worker_bytecodes, "
                        "sys.monitoring) instead of instructions under callgrind")
    parser.add_argument("--env", action="append", default=[], metavar="TARGET:KEY=VALUE",
                        help="an extra environment variable for one target's host and worker")
    parser.add_argument("--json", default=None, help="also write the figures here")
    return parser.parse_args()


def start(args: argparse.Namespace, logs: Path) -> tuple[list, dict[str, tuple]]:
    """The simulator, one Azurite per limits-on gateway, and every target's host + worker."""
    procs = [spawn_node("backend", logs, INSTANT)]
    backend = procs[0].url
    wanted = [(t, None) for t in args.targets]
    if args.base:
        tree = export_tree(args.base, logs)
        wanted += [(f"{t} base", tree) for t in args.targets if t != "ten-line"]
    extra_env: dict[str, dict[str, str]] = {}
    for item in args.env:
        name, _, pair = item.partition(":")
        key, _, value = pair.partition("=")
        extra_env.setdefault(name, {})[key] = value
    targets: dict[str, tuple] = {}
    for name, tree in wanted:
        kind = name.split()[0]
        out = logs / "callgrind" / name.replace(" ", "-")
        out.mkdir(parents=True)
        wrapper = " ".join([*CALLGRIND, f"--callgrind-out-file={out}/cg.%p"])
        env = {**WORKER_ENV, "PYTHONHASHSEED": "0", "FUNCHOST_START_TIMEOUT_S": "900",
               "FUNCHOST_FUNCTION_TIMEOUT_S": "600"}
        if args.bytecodes:  # no valgrind: the hook counts, in whichever process is signalled
            env.update(PYTHONPATH=str(ROOT / "load/worker_bytecodes"),
                       WORKER_BYTECODES_OUT=str(out))
        elif args.process in ("worker", "both"):
            env["FUNCHOST_WORKER_WRAPPER"] = wrapper
        cmd = list(HOST_CMD)
        if args.process in ("host", "both") and not args.bytecodes:
            cmd = [*CALLGRIND, f"--callgrind-out-file={out}/host.%p", *cmd]
        if tree is not None:  # this tree's host and worker (the wrapper), that tree's app
            cmd += ["--app-dir", str(tree)]
        if kind == "ten-line":
            cmd += ["--app-dir", str(ROOT / "load/tenline")]
            env["BACKEND_URL"] = backend
            path, ready = "/infer", None
        else:
            env["NODE_SERVICE_URL"] = backend
            path, ready = "/infer/node", "/healthz"
            if kind in ("far", "off-store"):
                azurite = Azurite(logs / f"azurite-{len(procs)}").start()
                procs.append(azurite)
                env["RATE_LIMIT_STORAGE_CONNECTION"] = azurite.connection_string
            env.update(FAR if kind.startswith("far") else {"RATE_LIMIT_ENABLED": "false"})
        env.update(extra_env.get(name, {}))
        port = free_port()
        proc = spawn(name.replace(" ", "-"), cmd, port=port, log_dir=logs, timeout=1200,
                     ready_path=ready, env={**env, "PORT": str(port)})
        procs.append(proc)
        targets[name] = (proc, proc.url + path, out)
    return procs, targets


def control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True,
                   timeout=600)


async def drive(url: str, requests: int, connections: int) -> None:
    """Exactly `requests` POSTs over `connections` keep-alive connections; all must be 200."""
    left = iter(range(requests))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:
        async def one_connection() -> None:
            for _ in left:
                got = await client.post(url, content=BODY,
                                        headers={"Content-Type": "application/json"})
                if got.status_code != 200:
                    raise RuntimeError(f"{url} answered {got.status_code}: {got.text[:200]}")

        await asyncio.gather(*(one_connection() for _ in range(connections)))


def window(args: argparse.Namespace, pids: list[tuple[int, Path, str]], run
           ) -> tuple[float, list[dict[str, float]]]:
    """Zero the counts of `pids`, run(), take them: the wall seconds and, per pid, the count by
    function (TOTAL: all of them)."""
    befores = [set(out.glob(f"{prefix}.{pid}.*")) for pid, out, prefix in pids]
    for pid, _, _ in pids:
        if args.bytecodes:
            os.kill(pid, signal.SIGUSR1)
        else:
            control(pid, "-z")
    if args.bytecodes:
        time.sleep(0.2)  # the handler runs at the worker's next bytecode
    began = time.perf_counter()
    run()
    took = time.perf_counter() - began
    for pid, _, _ in pids:
        if args.bytecodes:
            os.kill(pid, signal.SIGUSR2)
        else:
            control(pid, "-d")
    return took, [counts(args, dump_of(out, pid, prefix, before))
                  for (pid, out, prefix), before in zip(pids, befores, strict=True)]


def dump_of(out: Path, pid: int, prefix: str, before: set[Path]) -> Path:
    """The dump just written for `pid` (its newest numbered file)."""
    for _ in range(600):
        new = sorted((p for p in set(out.glob(f"{prefix}.{pid}.*")) - before
                      if p.name.rsplit(".", 1)[1].isdigit() or p.name.endswith(".json")),
                     key=lambda p: int(p.name.split(".")[2]))
        if new and new[-1].stat().st_size and (new[-1].name.endswith(".json") or "totals:" in
                                                 new[-1].read_text(errors="replace")):
            return new[-1]
        time.sleep(0.1)
    raise RuntimeError(f"no dump from {pid} in {out}")


TOTAL = "(all)"


def counts(args: argparse.Namespace, dump: Path) -> dict[str, float]:
    """Per function: its own instructions in a callgrind dump (callgrind_annotate), or its
    bytecodes (load/worker_bytecodes' JSON); TOTAL the whole count."""
    if args.bytecodes:
        table = {_short(k): v for k, v in json.loads(dump.read_text()).items()}
        table[TOTAL] = sum(table.values())
        return table
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100",
                           str(dump)], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if m and not line.lstrip().startswith(("Ir", "--")) and ":" in m.group(2):
            name = re.sub(r"/tmp/python-build[^/]*/Python-[^/]*/", "python:",
                          m.group(2).split(" [", 1)[0])
            table[name] = table.get(name, 0) + int(m.group(1).replace(",", ""))
    table[TOTAL] = int(re.search(r"^totals:\s*(\d+)", dump.read_text(errors="replace"),
                                 re.M).group(1))
    return table


def _short(key: str) -> str:
    """A code object's file as profile_worker_calls shows it (site-packages or tree relative),
    the exported base tree's folder dropped so both trees' rows meet."""
    path = key.split("site-packages/")[-1] if "site-packages" in key else \
        key.replace(str(ROOT) + "/", "")
    return re.sub(r"^.*/base/", "", path)


def measure(args: argparse.Namespace, name: str, proc, url: str, out: Path) -> dict:
    host, worker = host_and_worker(proc) if args.process != "host" else (proc.popen.pid, 0)
    kinds = ("bc", "bc") if args.bytecodes else ("cg", "host")
    watched = [(pid, out, prefix) for pid, prefix, on in
               ((worker, kinds[0], args.process in ("worker", "both")),
                (host, kinds[1], args.process in ("host", "both"))) if on]
    for pid, _, _ in watched:
        if not args.bytecodes:
            control(pid, "-i", "on")
    asyncio.run(drive(url, args.warmup, args.connections))
    stats0 = stats_of(url) if name != "ten-line" else {}
    idle1 = window(args, watched, lambda: time.sleep(args.idle))
    busy = window(args, watched,
                  lambda: asyncio.run(drive(url, args.requests, args.connections)))
    idle2 = window(args, watched, lambda: time.sleep(args.idle))
    stats1 = stats_of(url) if name != "ten-line" else {}
    result: dict = {"requests": args.requests, "busy_s": busy[0], "stats": {}}
    lim0, lim1 = stats0.get("limiter", {}), stats1.get("limiter", {})
    for key in ("storage_round_trips", "storage_reads", "storage_writes", "fast_admitted"):
        if key in lim1:  # over the three windows; the idle ones add upkeep's own
            result["stats"][key] = (lim1[key] - lim0.get(key, 0)) / args.requests
    for i, (pid, _, _) in enumerate(watched):
        role = "worker" if pid == worker else "host"
        idle = [(took, tables[i]) for took, tables in (idle1, idle2)]
        busy_table = busy[1][i]
        keys = set(busy_table).union(*(t for _, t in idle))
        # per function: (busy - mean idle rate x busy seconds) / requests
        per_fn = {k: (busy_table.get(k, 0) - busy[0] * sum(t.get(k, 0) / took
                                                            for took, t in idle) / 2)
                  / args.requests for k in keys}
        result[role] = {"pid": pid, "per_request": per_fn.pop(TOTAL),
                        "idle_per_s": [t[TOTAL] / took for took, t in idle],
                        "busy_total": busy_table[TOTAL], "functions": per_fn}
    return result


def differing(a: dict[str, float], b: dict[str, float], top: int) -> list[str]:
    keys = sorted(set(a) | set(b), key=lambda k: -abs(a.get(k, 0.0) - b.get(k, 0.0)))
    return [f"{a.get(k, 0.0) - b.get(k, 0.0):+10,.0f} {a.get(k, 0.0):10,.0f} "
            f"{b.get(k, 0.0):10,.0f}  {k}" for k in keys[:top]]


def report(results: dict[str, dict], args: argparse.Namespace) -> str:
    unit = "Python bytecodes" if args.bytecodes else "instructions"
    lines = [f"{unit} per request ({'sys.monitoring' if args.bytecodes else 'callgrind'}; "
             f"{args.requests} requests over "
             f"{args.connections} connections after {args.warmup} warm-up; idle windows "
             f"{args.idle:.0f} s; load average {os.getloadavg()[0]:.1f})"]
    roles = [r for r in ("worker", "host") if any(r in res for res in results.values())]
    for name, res in results.items():
        for role in roles:
            got = res[role]
            lines.append(f"  {name:12} {role}: {got['per_request']:>10,.0f} per request "
                         f"(busy {got['busy_total']:,} over {res['busy_s']:.1f} s; idle "
                         f"{', '.join(f'{r:,.0f}' for r in got['idle_per_s'])} per s)")
        if res["stats"]:
            lines.append(f"  {name:12} limiter per request: " + ", ".join(
                f"{k} {v:.4f}" for k, v in res["stats"].items()))
    pairs = [("far", "off"), ("off", "ten-line"), ("far", "ten-line"), ("far-mem", "off"),
             ("off-store", "off"), ("far", "far-mem"), ("far", "far base"), ("off", "off base"),
             ("far-mem", "far-mem base")]
    for a, b in pairs:
        if a in results and b in results:
            for role in roles:
                gap = results[a][role]["per_request"] - results[b][role]["per_request"]
                lines += ["", f"{a} - {b}, {role}: {gap:+,.0f} {unit} per request; by function "
                          f"(own {unit} per request: gap, {a}, {b}):"]
                lines += differing(results[a][role]["functions"],
                                   results[b][role]["functions"], args.top)
    return "\n".join(lines)


def main() -> int:
    args = arguments()
    logs = Path(tempfile.mkdtemp(prefix="instructions-"))
    procs, targets = start(args, logs)
    results: dict[str, dict] = {}
    try:
        for name, (proc, url, out) in targets.items():
            results[name] = measure(args, name, proc, url, out)
            print(f"{name}: done ({time.strftime('%H:%M:%S', time.gmtime())} UTC)",
                  file=sys.stderr)
    finally:
        for proc in reversed(procs):
            proc.stop()
    print(report(results, args))
    print(f"logs and dumps: {logs}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {n: {k: v for k, v in r.items()} for n, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
