"""Where the gateway's worker spends its time under load: py-spy samples the worker process
(funchost.worker, the real azure-functions-runtime) while wrk drives the gateway.

    .venv/bin/python load/profile_worker.py [--seconds 15] [--limits off|far]

The gateway runs with the defaults (cache and telemetry on; --limits far: limits on, never
binding, on Azurite) against the instant Node simulator. Writes the raw samples
(load/results/profile-worker.txt, flamegraph.pl's collapsed format) and prints the functions
with the most samples, by self time and by inclusive time within the project's own code.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))
from bench_gateway import FAR, WRK_LUA, host_and_worker  # noqa: E402

from scripts.azurite import Azurite  # noqa: E402
from scripts.procs import HOST_CMD, INSTANT, WORKER_ENV, free_port, spawn, spawn_node  # noqa: E402


def summarize(raw: Path, top: int) -> str:
    """Self and inclusive sample counts per frame (function (file:line) stripped of line)."""
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")"
                  for f in stack.split(";") if f]
        n = int(count)
        total += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "", "self:"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive, project code (function_app/):"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common()
              if "function_app/" in f][:top]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--limits", choices=("off", "far"), default="far")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="profile-"))
    procs = []
    try:
        backend = spawn_node("backend", logs, INSTANT)
        procs.append(backend)
        extra = {"RATE_LIMIT_ENABLED": "false"}
        if args.limits == "far":
            azurite = Azurite(logs / "azurite").start()
            procs.append(azurite)
            extra = {**FAR, "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string}
        port = free_port()
        gateway = spawn("gateway", HOST_CMD, port=port, log_dir=logs, timeout=120,
                        env={**WORKER_ENV, **extra, "PORT": str(port),
                             "NODE_SERVICE_URL": backend.url})
        procs.append(gateway)
        _, worker = host_and_worker(gateway)
        script = logs / "post.lua"
        script.write_text(WRK_LUA)
        url = f"{gateway.url}/infer/node"
        subprocess.run(["wrk", "-t2", "-c32", "-d3s", "-s", str(script), url],
                       capture_output=True, check=True)  # warm-up
        raw = ROOT / "load/results/profile-worker.txt"
        raw.parent.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "-r", "200", "-d",
                                str(args.seconds), "-f", "raw", "-o", str(raw), "--pid",
                                str(worker)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds + 1}s", "-s",
                        str(script), url], capture_output=True, check=True)
        spy.wait(timeout=60)
    finally:
        for proc in reversed(procs):
            proc.stop()
    print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
