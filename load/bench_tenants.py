"""Gateway API keys, in one run: what checking a key costs, how fast a revocation spreads, and
whether a tenant's daily budget holds across instances.

    .venv/bin/python load/bench_tenants.py          (or: make bench-tenants)

One Azurite, one Node simulator, and four gateways on it: one with GATEWAY_AUTH=none and three
with GATEWAY_AUTH=required (limits on, never binding, identical otherwise).
1. Throughput: wrk on /infer/node against `none` and against the first `required` gateway (with
   a valid key), rounds interleaved; the ratio of medians (target >= 0.95).
2. Revocation: every `required` gateway has the key cached; the CLI revokes it; each gateway is
   polled every 20 ms until it answers 401; seconds from the CLI's start (target <= 5 s).
3. Budget: a tenant with a daily budget, two keys, workers spread over the three `required`
   gateways until every one is told budget_exceeded; tokens used (reported usage of admitted
   answers) against the budget and the stated bound budget + instances x one request's estimate.
Writes load/results/bench_tenants.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "load")]
from bench_gateway import wrk  # noqa: E402

from scripts.procs import HOST_CMD, INSTANT, PYTHON, WORKER_ENV, free_port, spawn, spawn_node  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402

WRK_LUA = ('wrk.method = "POST"\nwrk.body = \'{"prompt": "benchmark"}\'\n'
           'wrk.headers["Content-Type"] = "application/json"\n')
CHAT = {"model": "sim-node", "messages": [{"role": "user", "content": "budget"}],
        "max_tokens": 20}


def admin(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([PYTHON, "-m", "function_app.admin", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout


def start(logs: Path) -> tuple[list, dict[str, str], list[str]]:
    azurite = Azurite(logs / "azurite").start()
    backend = spawn_node("backend", logs, INSTANT)
    storage = {"RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string}
    common = {**storage, "NODE_SERVICE_URL": backend.url, "GLOBAL_RPS": "1000000",
              "GLOBAL_BURST": "1000000", "CLIENT_RPS": "1000000", "CLIENT_BURST": "1000000",
              "CLIENT_TPM": "0", "MODEL_TPM": "0"}
    gateways = []
    for name, auth in (("none", "none"), *((f"required-{i}", "required") for i in range(3))):
        gport = free_port()
        gateways.append(spawn(f"gateway-{name}", HOST_CMD,
                              port=gport, log_dir=logs,
                              env={**WORKER_ENV, **common, "PORT": str(gport),
                                   "GATEWAY_AUTH": auth}))
    return [*gateways, backend, azurite], {**os.environ, **storage}, [g.url for g in gateways]


def throughput(urls: list[str], key: str, args, logs: Path) -> dict:
    plain, keyed = logs / "plain.lua", logs / "keyed.lua"
    plain.write_text(WRK_LUA)
    keyed.write_text(WRK_LUA + f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    rounds: dict[str, list[dict]] = {"none": [], "required": []}
    wrk(f"{urls[1]}/infer/node", 2, args.connections, keyed)  # warm up both
    wrk(f"{urls[0]}/infer/node", 2, args.connections, plain)
    for _ in range(args.rounds):
        rounds["required"].append(wrk(f"{urls[1]}/infer/node", args.seconds, args.connections,
                                      keyed))
        rounds["none"].append(wrk(f"{urls[0]}/infer/node", args.seconds, args.connections,
                                  plain))
    med = {k: statistics.median(r["rps"] for r in v) for k, v in rounds.items()}
    return {"rounds": rounds, "median_rps": med, "ratio": med["required"] / med["none"]}


def revocation(urls: list[str], env: dict[str, str]) -> dict:
    key = admin(env, "keys", "create", "--tenant", "revoke", "--name", "bench").splitlines()[-1]
    headers = {"authorization": f"Bearer {key}"}
    for url in urls:
        assert httpx.get(f"{url}/v1/models", headers=headers, timeout=5).status_code == 200
    started = time.monotonic()
    admin(env, "keys", "revoke", key[:11])
    cli_done = time.monotonic() - started
    seen: dict[str, float] = {}
    while len(seen) < len(urls) and time.monotonic() - started < 30:
        for url in urls:
            if url not in seen and httpx.get(f"{url}/v1/models", headers=headers,
                                             timeout=5).status_code == 401:
                seen[url] = time.monotonic() - started
        time.sleep(0.02)
    return {"cli_s": cli_done, "refused_after_s": sorted(seen.values()),
            "all_within_s": max(seen.values()) if len(seen) == len(urls) else None}


async def spend(urls: list[str], keys: list[str], workers: int) -> dict:
    totals: dict = {"used": 0, "admitted": 0, "budget_exceeded": 0, "other": 0}

    async def worker(i: int, session: aiohttp.ClientSession) -> None:
        url, key = f"{urls[i % len(urls)]}/v1/chat/completions", keys[i % len(keys)]
        for _ in range(10_000):
            async with session.post(url, json=CHAT,
                                    headers={"authorization": f"Bearer {key}"}) as reply:
                body = await reply.json()
            if reply.status == 200:
                totals["used"] += body["usage"]["total_tokens"]
                totals["admitted"] += 1
            elif body["error"]["code"] == "budget_exceeded":
                totals["budget_exceeded"] += 1
                return
            else:
                totals["other"] += 1
                totals.setdefault("other_codes", {}).setdefault(body["error"]["code"], 0)
                totals["other_codes"][body["error"]["code"]] += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(i, session) for i in range(workers)))
    return totals


def reservation(url: str, operator_key: str) -> float:
    """The mean reservation (estimate) of one gateway's settled OpenAI requests (its stats need
    an operator key under GATEWAY_AUTH=required: docs/SECURITY.md)."""
    t = httpx.get(f"{url}/_gateway/stats", timeout=5,
                  headers={"authorization": f"Bearer {operator_key}"}).json()["tokens"]["totals"]
    used = t["prompt_tokens"] + t["completion_tokens"]
    return (used + t["refunded_tokens"] - t["extra_charged_tokens"]) / max(1, t["requests"])


def budget(urls: list[str], env: dict[str, str], args) -> dict:
    admin(env, "tenants", "set", "budget", "--daily-tokens", str(args.budget))
    keys = [admin(env, "keys", "create", "--tenant", "budget", "--name", f"k{i}")
            .splitlines()[-1] for i in range(2)]
    result = asyncio.run(spend(urls, keys, args.workers))
    operator = admin(env, "keys", "create", "--tenant", "ops", "--name", "bench",
                     "--operator").splitlines()[-1]
    estimate = max(reservation(url, operator) for url in urls)
    return {**result, "budget": args.budget, "instances": len(urls),
            "bound": round(args.budget + len(urls) * estimate),
            "estimate_per_request_max": estimate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--budget", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs, env, urls = start(Path(tmp))
        try:
            key = admin(env, "keys", "create", "--tenant", "bench", "--name",
                        "wrk").splitlines()[-1]
            report = {"throughput": throughput(urls, key, args, Path(tmp)),
                      "revocation": revocation(urls[1:], env),
                      "budget": budget(urls[1:], env, args)}
        finally:
            for proc in procs:
                proc.stop()
    out = ROOT / "load/results/bench_tenants.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    tp, rv, bd = report["throughput"], report["revocation"], report["budget"]
    print("| measure | value | target |\n|---|---|---|")
    print(f"| throughput required / none (median of {args.rounds} rounds, rps "
          f"{tp['median_rps']['required']:.0f} / {tp['median_rps']['none']:.0f}) "
          f"| {tp['ratio']:.3f} | >= 0.95 |")
    print(f"| revocation seen by all 3 instances after the CLI started | "
          f"{rv['all_within_s']:.2f} s (CLI itself {rv['cli_s']:.2f} s) | <= 5 s |")
    print(f"| tenant daily budget, 3 instances: tokens used / budget / bound | {bd['used']} / "
          f"{bd['budget']} / {bd['bound']} | used <= bound |")


if __name__ == "__main__":
    main()
