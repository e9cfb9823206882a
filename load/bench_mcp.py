"""MCP through the gateway against the MCP server direct, in one run: what the gateway's checks
(key, tool allow-list, JSON-RPC parse and re-encode, sealed session, answer filter) cost.

    .venv/bin/python load/bench_mcp.py          (or: make bench-mcp)

One Azurite, the MCP simulator (services/mcp, the official SDK's server) and one gateway on the
local host with GATEWAY_AUTH=required and a key for `tools:add,tools:echo` (limits on, never
binding). Each target gets one session; WORKERS concurrent clients send `tools/call add` for
SECONDS, rounds interleaved (direct, gateway, direct, ...). Reported: calls per second per
round, the ratio of medians (gateway / direct), and the same for `tools/list` (filtered by the
gateway: the server lists five tools, the key sees two). Writes load/results/bench_mcp.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
from scripts.procs import PYTHON, free_port, spawn, spawn_host  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402

ACCEPT = "application/json, text/event-stream"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "bench", "version": "1"}}}
CALLS = {"add": {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": "add", "arguments": {"a": 1, "b": 2}}},
         "list": {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}}


def start(logs: Path) -> tuple[list, str, str, str]:
    azurite = Azurite(logs / "azurite").start()
    port = free_port()
    server = spawn("mcp-server", [PYTHON, "server.py"], port=port, log_dir=logs,
                   cwd=ROOT / "services/mcp", env={"PORT": str(port)}, ready_path=None,
                   timeout=90)
    storage = {"RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string}
    env = {**storage, "GATEWAY_AUTH": "required", "TELEMETRY_REQUEST_LOG": "false",
           "MCP_SERVERS": json.dumps({"tools": f"{server.url}/mcp"}),
           "MCP_SESSION_KEY": base64.b64encode(os.urandom(32)).decode(),
           "GLOBAL_RPS": "1000000", "GLOBAL_BURST": "1000000", "CLIENT_RPS": "1000000",
           "CLIENT_BURST": "1000000"}
    gateway = spawn_host("gateway", port=free_port(), log_dir=logs, env=env)
    done = subprocess.run([PYTHON, "-m", "function_app.admin", "keys", "create", "--tenant",
                           "bench", "--name", "mcp", "--mcp-tools", "tools:add,tools:echo"],
                          cwd=ROOT, env={**os.environ, **storage}, capture_output=True,
                          text=True, check=True)
    return [gateway, server, azurite], f"{server.url}/mcp", f"{gateway.url}/mcp/tools", \
        done.stdout.splitlines()[-1]


async def session_of(http: aiohttp.ClientSession, url: str, headers: dict) -> dict:
    async with http.post(url, json=INIT, headers=headers) as answer:
        await answer.read()
        sid = answer.headers["mcp-session-id"]
    headers = {**headers, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
    async with http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers=headers) as answer:
        await answer.read()
    return headers


async def rate(url: str, headers: dict, body: dict, workers: int, seconds: float) -> float:
    """Calls per second, each answer read to its end and checked for a result."""
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as http:
        headers = await session_of(http, url, headers)
        done, stop, ids = 0, time.monotonic() + seconds, [10]

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                ids[0] += 1  # one session: every request in flight needs its own id
                async with http.post(url, json={**body, "id": ids[0]},
                                     headers=headers) as answer:
                    text = await answer.text()
                    if answer.status != 200 or '"result"' not in text:
                        raise RuntimeError(f"{url} {answer.status} {answer.headers}: {text[:200]}")
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return done / (time.monotonic() - started)


def measure(direct: str, gateway: str, key: str, args) -> dict:
    results = {}
    for name, body in CALLS.items():
        rounds: dict[str, list[float]] = {"direct": [], "gateway": []}
        for _ in range(args.rounds):
            rounds["direct"].append(asyncio.run(rate(direct, {"accept": ACCEPT}, body,
                                                     args.workers, args.seconds)))
            rounds["gateway"].append(asyncio.run(rate(
                gateway, {"accept": ACCEPT, "authorization": f"Bearer {key}"}, body,
                args.workers, args.seconds)))
        ratio = statistics.median(rounds["gateway"]) / statistics.median(rounds["direct"])
        results[name] = {**rounds, "ratio": round(ratio, 3)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs, direct, gateway, key = start(Path(tmp))
        try:
            results = measure(direct, gateway, key, args)
        finally:
            for proc in procs:
                proc.stop()
    out = ROOT / "load/results/bench_mcp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print("| call | direct calls/s (rounds) | gateway calls/s (rounds) | gateway / direct |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {' / '.join(f'{x:.0f}' for x in r['direct'])} | "
              f"{' / '.join(f'{x:.0f}' for x in r['gateway'])} | {r['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
