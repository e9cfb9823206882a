"""Chaos benchmark of resilient routing: kill backends under load, measure what clients see.

    .venv/bin/python load/chaos.py            (or: make chaos)

Two Python simulators (pool of /infer/python) and the Node one (its fallback), three gateway
instances sharing one Azurite, 200 requests per second (open loop, round-robin over the
instances) for 90 s. At 20 s one Python backend is SIGKILLed, at 40 s it is restarted on its
port, at 60 s both Python backends are killed. Every answer's status and serving backend
(X-Gateway-Backend) is recorded, and each instance's breaker states and retry counters are
sampled every 0.1 s. load/chaos_report.py turns that into docs/chaos/chaos.png and
docs/chaos/chaos.md; the raw record goes to load/results/chaos.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "load")]
from chaos_report import write_report  # noqa: E402

from scripts.procs import HOST_CMD, PYTHON, WORKER_ENV, Proc, free_port, spawn  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402

BODY = b'{"prompt": "chaos"}'
SIM_ENV = {"LATENCY_MIN_MS": "20", "LATENCY_MAX_MS": "40"}


def python_sim(log_dir: Path, name: str, port: int) -> Proc:
    return spawn(name, [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port",
                        str(port), "--no-access-log"], port=port, log_dir=log_dir,
                 cwd=ROOT / "services/python", env={**SIM_ENV, "PORT": str(port)})


def gateway(log_dir: Path, name: str, env: dict[str, str]) -> Proc:
    # As tests/e2e/conftest.py start_gateway does (the local host; the real worker after #9).
    port = free_port()
    return spawn(name, HOST_CMD, port=port, log_dir=log_dir,
                 env={**WORKER_ENV, **env, "PORT": str(port)})


def gateway_env(py: Proc, py2: Proc, node: Proc, azurite: Azurite) -> dict[str, str]:
    routes = [{"path": "/infer/python", "methods": ["POST"], "backends": ["python", "python2"],
               "upstream_path": "/infer", "fallbacks": ["node"], "idempotent": True,
               "timeout_s": 10}]
    return {"PY_SERVICE_URL": py.url, "NODE_SERVICE_URL": node.url,
            "GATEWAY_BACKENDS": json.dumps({"python2": py2.url}),
            "GATEWAY_ROUTES": json.dumps(routes), "RATE_LIMIT_ENABLED": "false",
            "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string}


def kill(proc: Proc) -> None:
    os.killpg(proc.popen.pid, signal.SIGKILL)
    proc.popen.wait(timeout=5)


class Recorder:
    def __init__(self) -> None:
        self.t0 = 0.0
        self.answers: list[tuple[float, int, str, int]] = []  # t, status, backend, instance
        self.samples: list[dict] = []
        self.events: list[tuple[float, str]] = []

    def now(self) -> float:
        return time.monotonic() - self.t0


async def one(session: aiohttp.ClientSession, url: str, instance: int, rec: Recorder) -> None:
    try:
        async with session.post(f"{url}/infer/python", data=BODY,
                                headers={"content-type": "application/json"}) as response:
            await response.read()
            rec.answers.append((rec.now(), response.status,
                                response.headers.get("x-gateway-backend", ""), instance))
    except (aiohttp.ClientError, TimeoutError):
        rec.answers.append((rec.now(), 0, "", instance))  # no answer at all


async def load(urls: list[str], rps: float, seconds: float, rec: Recorder) -> None:
    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks, n = set(), 0
        while (due := n / rps) < seconds:
            await asyncio.sleep(max(0.0, due - rec.now()))
            task = asyncio.ensure_future(one(session, urls[n % len(urls)], n % len(urls), rec))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)


async def sample(urls: list[str], seconds: float, rec: Recorder) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while rec.now() < seconds:
            at = rec.now()
            for index, url in enumerate(urls):
                try:
                    async with session.get(f"{url}/_gateway/stats") as response:
                        routing = (await response.json())["routing"]
                except (aiohttp.ClientError, TimeoutError, KeyError):
                    continue
                totals = routing["totals"]
                rec.samples.append({"t": at, "instance": index,
                                    "states": routing["breakers"]["states"],
                                    "retries": totals["retries"],
                                    "refusals": totals["budget_refusals"],
                                    "attempts": totals["attempts"],
                                    "adopted": routing["breakers"]["adopted"],
                                    "storage": routing["breakers"]["storage_healthy"]})
            await asyncio.sleep(0.1)


async def backend_up(url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while True:
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.02)


async def chaos(procs: dict[str, Proc], log_dir: Path, rec: Recorder, at: tuple[float, ...]
                ) -> None:
    kill_one, restart, kill_both = at
    await asyncio.sleep(kill_one - rec.now())
    kill(procs["python2"])
    rec.events.append((rec.now(), "python2 killed"))
    await asyncio.sleep(restart - rec.now())
    port = procs["python2"].port
    procs["python2"] = await asyncio.to_thread(python_sim, log_dir, "python2-again", port)
    await backend_up(procs["python2"].url)
    rec.events.append((rec.now(), "python2 answering"))
    await asyncio.sleep(kill_both - rec.now())
    kill(procs["python"])
    kill(procs["python2"])
    rec.events.append((rec.now(), "both python killed"))


async def run(args: argparse.Namespace, log_dir: Path) -> Recorder:
    azurite = Azurite(log_dir / "azurite").start()
    procs: dict[str, Proc] = {}
    gateways: list[Proc] = []
    try:
        procs["python"] = python_sim(log_dir, "python", free_port())
        procs["python2"] = python_sim(log_dir, "python2", free_port())
        node_port = free_port()
        procs["node"] = spawn("node", ["node", "server.js"], port=node_port, log_dir=log_dir,
                              cwd=ROOT / "services/node", env={**SIM_ENV,
                                                               "PORT": str(node_port)})
        env = gateway_env(procs["python"], procs["python2"], procs["node"], azurite)
        gateways = [gateway(log_dir, f"gateway-{i}", env) for i in range(args.instances)]
        urls = [g.url for g in gateways]
        rec = Recorder()
        rec.t0 = time.monotonic()
        scale = args.seconds / 90
        at = (20 * scale, 40 * scale, 60 * scale)
        await asyncio.gather(load(urls, args.rps, args.seconds, rec),
                             sample(urls, args.seconds + 1, rec),
                             chaos(procs, log_dir, rec, at))
        return rec
    finally:
        for proc in [*gateways, *procs.values()]:
            proc.stop()
        azurite.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "chaos")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        rec = asyncio.run(run(args, Path(tmp)))
    raw = {"answers": rec.answers, "samples": rec.samples, "events": rec.events,
           "rps": args.rps, "seconds": args.seconds, "instances": args.instances}
    results = ROOT / "load" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "chaos.json").write_text(json.dumps(raw))
    table = write_report(raw, args.out)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
