"""CPU per streamed chunk through the local host and the real worker, and where it goes.

    .venv/bin/python load/profile_streams.py [--base COMMIT] [--streams 200] [--rounds 2]
                                             [--stream-s 10] [--spy] [--reference tenline]

Wall-clock latency on a shared machine is noise; CPU time per chunk is not (much). For each tree
(the current one, and with --base a commit checked out by `git archive`), one gateway (host +
worker, the setup of load/bench_streams.py: an OpenAI route to its backend (--sim), limits and
cache and telemetry on) is started; then rounds alternate between the trees, each round opening
--streams streamed chat completions (a chunk every --chunk-ms for --stream-s) and reading the
host's and the worker's CPU time from /proc over it. CPU per chunk = that CPU / the data events
the clients received; CPU per stream open is reported from short streams (--open-chunks). With
--spy, py-spy samples the current tree's worker and host during its last round (raw samples in
load/results/profile-streams-{worker,host}.txt, summarised like load/profile_worker.py).
With --reference tenline, the bare streaming function (load/tenline_stream) is a third tree in
the rounds, and --cprofile profiles its worker too: the platform's own calls per chunk.
With --callgrind, every tree's worker (--base's and the reference's too) runs under valgrind's
callgrind (load/stream_callgrind.py) and every round of it counts the instructions it executed:
per chunk, per stream open and per chunk net of opens, deterministic where CPU time is not (its
CPU figures are then callgrind's, not the tree's: use few streams, e.g. --streams 5).
Writes load/results/profile_streams.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
import stream_callgrind  # noqa: E402
from bench_gateway import FAR, cpu_seconds, host_and_worker  # noqa: E402
from bench_streams import (  # noqa: E402
    MODEL,
    REFERENCE,
    phase,
    raise_fd_limit,
    simulator,
    start_reference,
)
from profile_worker import summarize  # noqa: E402
from stream_cprofile import counting, hook_env, per_chunk  # noqa: E402

from scripts.procs import (  # noqa: E402
    HOST_CMD,
    WORKER_ENV,
    export_tree,
    free_port,
    spawn,
)


def gateway(tree: Path, logs: Path, sim_url: str, name: str, max_streams: int,
            extra: dict[str, str]):
    port = free_port()
    return spawn(name, HOST_CMD, port=port, log_dir=logs, timeout=180, cwd=tree, env={
        **WORKER_ENV, **FAR, **extra, "PORT": str(port), "RATE_LIMIT_STORAGE_CONNECTION": "",
        "CLIENT_TPM": "1e9", "MODEL_TPM": "1e9",
        "MODEL_ROUTES": json.dumps({MODEL: sim_url}),
        "UPSTREAM_MAX_CONNECTIONS": str(max_streams * 2)})


PROFILES = ROOT / "load/results/stream-cprofile"
PROFILED = ("now", REFERENCE)  # the trees --cprofile profiles (the reference when it runs)
GRIND = ROOT / "load/results/stream-callgrind"
IDLE_S = 5.0  # the idle worker's window (--callgrind): its instructions per second


def instruction_figures(long: dict, short: dict, streams: int, idle_per_s: float = 0.0
                        ) -> dict[str, float]:
    """The worker's instructions per data event over a round, per stream open (the short
    round's, which is mostly opens), and per chunk net of opens: the long round less the short
    one, over the events it has more; and that less what the idle worker executes in the
    longer round's extra wall time (`idle_per_s`, its timers and threads)."""
    more = max(1, long["events"] - short["events"])
    net = long["instructions"] - short["instructions"]
    idle = idle_per_s * max(0.0, long.get("wall_s", 0.0) - short.get("wall_s", 0.0))
    return {"instructions_per_chunk": long["instructions"] / max(1, long["events"]),
            "open_instructions_per_stream": short["instructions"] / streams,
            "net_instructions_per_chunk": net / more,
            "net_less_idle_instructions_per_chunk": (net - idle) / more}


def system_seconds(pid: int) -> float:
    """Kernel CPU a process has used (Linux /proc), in seconds: its syscalls' share."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def measured(url: str, pids: tuple[int, int], n: int, args) -> dict:
    """One round: n streams; CPU of host and worker per data event received."""
    before = [cpu_seconds(p) for p in pids]
    kernel = sum(system_seconds(p) for p in pids)
    result = phase(url, n, args, None)
    host, worker = (cpu_seconds(p) - b for p, b in zip(pids, before, strict=True))
    kernel = sum(system_seconds(p) for p in pids) - kernel
    events = result["chunks"] + (n - result["errors"])  # gaps + first events
    return {"errors": result["errors"], "events": events,
            "kernel_share": kernel / max(host + worker, 1e-9),
            "host_us_per_chunk": host / events * 1e6, "worker_us_per_chunk": worker / events * 1e6,
            "host_cpu_s": host, "worker_cpu_s": worker,
            "client_us_per_chunk": result["client_cpu_s"] / events * 1e6}


def spy(pid: int, seconds: float, out: Path, native: bool) -> subprocess.Popen:
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "-r", "100", "-d",
                             str(max(1, round(seconds))), "-f", "raw", "-o", str(out),
                             "--pid", str(pid),
                             *(["--native"] if native else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def strace(pid: int, args) -> subprocess.Popen:
    """Syscall counts of `pid` (and its threads) over the steady middle of a round: every
    stream open, a chunk each --chunk-ms each (it slows the process: counts only)."""
    ramp, window = args.ramp_s + args.chunk_ms / 1000, max(1.0, args.stream_s / 3)
    return subprocess.Popen(["sh", "-c", f"sleep {ramp + 1:.1f}; exec timeout {window:.0f} "
                             f"strace -c -f -q -p {pid}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def syscalls(proc: subprocess.Popen, args) -> dict[str, float]:
    """strace -c's table as calls per chunk (chunks at the steady rate over its window)."""
    _, err = proc.communicate(timeout=120)
    chunks = args.streams * 1000 / args.chunk_ms * max(1.0, args.stream_s / 3)
    counts = {}
    for line in err.decode(errors="replace").splitlines():
        cells = line.split()
        if len(cells) >= 5 and cells[0][0].isdigit() and cells[-1] != "total":
            counts[cells[-1]] = round(int(cells[3]) / chunks, 2)
    return counts


def trees(args, logs: Path) -> dict[str, Path]:
    found = {"now": ROOT}
    if args.base:
        found = {f"base ({args.base})": export_tree(args.base, logs), "now": ROOT}
    if args.reference:  # its own app dir: start_reference knows it
        found[REFERENCE] = ROOT / "load/tenline_stream"
    return found


def total_calls(prof: Path) -> int:
    """Every call a cProfile file counted."""
    return sum(calls for _cc, calls, *_ in pstats.Stats(str(prof)).stats.values())


def timed(url: str, pids: tuple[int, int], n: int, args) -> dict:
    """`measured`, with the round's wall time (`wall_s`)."""
    began = time.monotonic()
    row = measured(url, pids, n, args)
    row["wall_s"] = time.monotonic() - began
    return row


def run_rounds(gateways: dict, args, idle: dict[str, float] | None = None
               ) -> dict[str, list[dict]]:
    """Rounds alternate between the trees (order reversed every other round)."""
    rows: dict[str, list[dict]] = {name: [] for name in gateways}
    idle = idle or {}
    opens = argparse.Namespace(**{**vars(args), "stream_s": args.open_chunks * args.chunk_ms
                                  / 1000})
    names = list(gateways)
    for k in range(args.rounds):
        for name in names if k % 2 == 0 else names[::-1]:
            url, pids = gateways[name]
            spying = []
            if args.spy and name == "now" and k == args.rounds - 1:
                # The ramp too: with short streams (--stream-s 1) the round is mostly opens.
                spying = [spy(pid, args.ramp_s + args.stream_s,
                              ROOT / f"load/results/profile-streams-{who}.txt", args.native)
                          for who, pid in zip(("host", "worker"), pids, strict=True)]
            tracing = []
            if args.strace and name == "now" and k == args.rounds - 1:
                tracing = [strace(pid, args) for pid in pids]
            grinding = args.callgrind  # every tree's worker, --base's too
            if args.cprofile and name in PROFILED and k == args.rounds - 1:
                row, prof = counting(pids[1], PROFILES, lambda u=url, p=pids: measured(
                    u, p, args.streams, args))
                row["cprofile"] = per_chunk(prof, row["events"], args.cprofile)
                row["calls"] = total_calls(prof)  # before the short round's profile replaces it
            elif grinding:
                row, row["instructions"] = stream_callgrind.counting(
                    pids[1], GRIND, lambda u=url, p=pids: timed(u, p, args.streams, args))
            else:
                row = measured(url, pids, args.streams, args)
            if tracing:
                row["syscalls_per_chunk"] = {who: syscalls(t, args) for who, t in
                                             zip(("host", "worker"), tracing, strict=True)}
            for s in spying:
                _, err = s.communicate(timeout=120)
                if s.returncode:
                    print("py-spy failed:", err.decode(errors="replace")[-500:], flush=True)
            if grinding:
                short, short["instructions"] = stream_callgrind.counting(
                    pids[1], GRIND, lambda u=url, p=pids: timed(u, p, args.streams, opens))
                row.update(instruction_figures(row, short, args.streams, idle.get(name, 0.0)))
            elif "cprofile" in row:  # the short round profiled too: calls per chunk net of opens
                short, short_prof = counting(pids[1], PROFILES, lambda u=url, p=pids: measured(
                    u, p, args.streams, opens))
                short["calls"] = total_calls(short_prof)
                row["net_calls_per_chunk"] = (row["calls"] - short["calls"]) / max(
                    1, row["events"] - short["events"])
                row["open_calls_per_stream"] = short["calls"] / args.streams
            else:
                short = measured(url, pids, args.streams, opens)
            row["open_us_per_stream"] = {
                "host": short["host_cpu_s"] / args.streams * 1e6,
                "worker": short["worker_cpu_s"] / args.streams * 1e6}
            # Net of the opening: the short round's CPU and events taken out of the long one's.
            more = max(1, row["events"] - short["events"])
            row["net_us_per_chunk"] = {
                who: (row[f"{who}_cpu_s"] - short[f"{who}_cpu_s"]) / more * 1e6
                for who in ("host", "worker")}
            rows[name].append(row)
            print(name, json.dumps(row), flush=True)
    return rows


def table(rows: dict[str, list[dict]], args) -> str:
    lines = [f"{args.streams} streams x {args.stream_s:.0f} s, a chunk every {args.chunk_ms} ms, "
             f"{args.rounds} rounds interleaved (median)", "",
             "| tree | host µs/chunk | worker µs/chunk | host+worker µs/chunk | "
             "net of opens: host / worker µs/chunk | open: host / worker µs/stream | errors |",
             "|---|---:|---:|---:|---|---|---:|"]
    for name, runs in rows.items():
        def med(key: str, runs: list[dict] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        def both(key: str, runs: list[dict] = runs) -> str:
            return " / ".join(f"{statistics.median(r[key][w] for r in runs):.0f}"
                              for w in ("host", "worker"))

        lines.append(f"| {name} | {med('host_us_per_chunk'):.0f} | "
                     f"{med('worker_us_per_chunk'):.0f} | "
                     f"{med('host_us_per_chunk') + med('worker_us_per_chunk'):.0f} | "
                     f"{both('net_us_per_chunk')} | {both('open_us_per_stream')} | "
                     f"{sum(r['errors'] for r in runs)} |")
    grind = {name: [r for r in runs if "instructions" in r] for name, runs in rows.items()}
    if any(grind.values()):
        lines += ["", "Worker instructions (callgrind), median of the rounds:", "",
                  "| tree | per chunk | per stream open | per chunk net of opens | "
                  "net of opens and idle |", "|---|---:|---:|---:|---:|"]
        for name, runs in grind.items():
            if runs:
                lines.append("| {} | {:,.0f} | {:,.0f} | {:,.0f} | {:,.0f} |".format(name, *(
                    statistics.median(r[key] for r in runs) for key in (
                        "instructions_per_chunk", "open_instructions_per_stream",
                        "net_instructions_per_chunk", "net_less_idle_instructions_per_chunk"))))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk-ms", type=int, default=100)
    parser.add_argument("--stream-s", type=float, default=10.0)
    parser.add_argument("--ramp-s", type=float, default=2.0)
    parser.add_argument("--open-chunks", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                        help="the client's implementation (load/stream_client.py)")
    parser.add_argument("--sim", choices=("lean", "node"), default="lean",
                        help="the backend: load/stream_sim.py or the Node simulator")
    parser.add_argument("--spy", action="store_true")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    parser.add_argument("--strace", action="store_true", help="syscalls per chunk (strace -c)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="TOP",
                        help="cProfile the current tree's worker in its last round; print the "
                        "TOP functions per chunk (load/stream_cprofile.py)")
    parser.add_argument("--callgrind", action="store_true",
                        help="run every tree's worker (--base's and the reference's too) under "
                        "callgrind: instructions per chunk, per open and net of opens")
    parser.add_argument("--reference", choices=(REFERENCE,), default=None,
                        help="also the bare streaming function (load/tenline_stream) in the "
                        "rounds; with --cprofile, its worker profiled too")
    args = parser.parse_args()
    if args.callgrind and args.cprofile:
        parser.error("--callgrind and --cprofile each need the worker to themselves")
    raise_fd_limit()
    logs = Path(tempfile.mkdtemp(prefix="profile-streams-"))
    sim = simulator(logs, args)
    procs, gateways, idle = [sim], {}, {}
    try:
        for k, (name, tree) in enumerate(trees(args, logs).items()):
            hook = hook_env(PROFILES) if args.cprofile and name in PROFILED else \
                stream_callgrind.hook_env(GRIND) if args.callgrind else {}
            proc = start_reference(logs, sim.url, hook) if name == REFERENCE else \
                gateway(tree, logs, sim.url, f"gateway{k}", args.streams, hook)
            procs.append(proc)
            url = f"{proc.url}/v1/chat/completions"
            warm = argparse.Namespace(**{**vars(args), "stream_s": 0.5, "ramp_s": 0.2})
            phase(url, 10, warm, None)
            gateways[name] = (url, host_and_worker(proc))
            if args.callgrind:  # counted from here on; warmed again
                stream_callgrind.instrument(gateways[name][1][1])
                phase(url, 10, warm, None)
                _, still = stream_callgrind.counting(gateways[name][1][1], GRIND,
                                                      lambda: time.sleep(IDLE_S))
                idle[name] = still / IDLE_S
                print(f"{name}: idle worker {idle[name]:,.0f} instructions/s", flush=True)
        rows = run_rounds(gateways, args, idle)
    finally:
        for proc in reversed(procs):
            proc.stop()
    print(table(rows, args))
    for name in PROFILED:
        for row in rows.get(name, ()):
            if "cprofile" in row:
                print(f"\n{name}: " + row["cprofile"])
                print(f"\n{name}: {row['net_calls_per_chunk']:.1f} calls per chunk net of "
                      f"opens, {row['open_calls_per_stream']:.0f} per stream open")
    if args.spy:
        for who in ("worker", "host"):
            print(f"\n{who}:\n" + summarize(ROOT / f"load/results/profile-streams-{who}.txt", 30))
    out = ROOT / "load/results/profile_streams.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
