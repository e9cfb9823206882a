"""What token limits cost when they do not bind, in one run: token limits off vs on.

    .venv/bin/python load/bench_tokens.py          (or: make bench-tokens)

Azurite is the store for both gateways; request limits are far away (1,000,000/s) on both.
wrk drives small chat completions (8 tokens of real usage, DEFAULT_MAX_TOKENS reserved) at
--connections from one client, interleaving rounds on the two gateways. Per round: answers per
second and p99 of each, their ratio, 429s, and storage round trips per request with token
limits on (from /_gateway/stats). Writes load/results/bench_tokens.json and prints a table.
Targets (issue #10): on/off >= 0.8 and <= 0.05 round trips per request, no 429.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "load")]
from bench_gateway import wrk  # noqa: E402

from scripts.procs import HOST_CMD, INSTANT, WORKER_ENV, free_port, spawn, spawn_node  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402

MODEL = "sim-node"
CHAT_LUA = ('wrk.method = "POST"\nwrk.body = \'{"model": "' + MODEL + '", "messages": '
            '[{"role": "user", "content": "hi"}]}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n')


def limiter(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/_gateway/stats", timeout=5).json()["limiter"]


def start(logs: Path, args) -> tuple[list, dict[str, str]]:
    azurite = Azurite(logs / "azurite").start()
    backend = spawn_node("backend", logs, INSTANT)
    common = {"NODE_SERVICE_URL": backend.url, "PY_SERVICE_URL": backend.url,
              "MODEL_ROUTES": json.dumps({MODEL: backend.url}),
              "GLOBAL_RPS": "1000000", "GLOBAL_BURST": "1000000", "CLIENT_RPS": "1000000",
              "CLIENT_BURST": "1000000", "CLIENT_ID_SOURCE": "api-key",
              "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
              "RATE_LIMIT_SYNC": args.sync}
    procs = {}
    for name, extra in (("off", {"CLIENT_TPM": "0", "MODEL_TPM": "0"}),
                        ("on", {"CLIENT_TPM": str(args.client_tpm)})):
        gw_port = free_port()
        procs[name] = spawn(f"gateway-{name}", HOST_CMD,
                            port=gw_port, log_dir=logs,
                            env={**WORKER_ENV, **common, **extra, "PORT": str(gw_port)})
    return [*procs.values(), backend, azurite], {k: p.url for k, p in procs.items()}


def one_round(url: str, args, logs: Path, client: str) -> dict:
    """One wrk run as a client of its own (an API key per round and target), so every round
    starts with a full token bucket: a faster machine must not make an earlier round's usage
    bind the next one (the scenario is a client far under its limit)."""
    script = logs / f"chat-{client}.lua"
    script.write_text(CHAT_LUA + f'wrk.headers["x-api-key"] = "{client}"\n')
    before = limiter(url)
    result = wrk(f"{url}/v1/chat/completions", args.seconds, args.connections, script)
    after = limiter(url)
    decisions = after["decisions"] - before["decisions"]
    trips = after["storage_round_trips"] - before["storage_round_trips"]
    requests = decisions / 2  # one request decision and one token decision each (limits on)
    delta = {name: after[name] - before[name] for name in
             ("leases", "lease_waits", "lease_rounds", "background_refills", "conflicts")}
    return {**result, "requests": result["rps"] * args.seconds,
            "round_trips_per_request": trips / max(1, requests), **delta}


def report(rounds: list[dict], args) -> str:
    lines = [f"CLIENT_TPM {args.client_tpm} vs token limits off; one client (API key) per "
             "round, wrk "
             f"{args.connections} connections x {args.seconds} s per round; Azurite store.", "",
             "| round | off RPS | on RPS | on/off | off p99 ms | on p99 ms | non-2xx on | "
             "round trips / request on |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rounds, 1):
        off, on = r["off"], r["on"]
        lines.append(f"| {i} | {off['rps']:.0f} | {on['rps']:.0f} | {on['rps'] / off['rps']:.2f}"
                     f" | {off['p99_ms']:.0f} | {on['p99_ms']:.0f} | {on['errors']} | "
                     f"{on['round_trips_per_request']:.4f} |")
    lines += ["", "Targets: on/off >= 0.8; round trips / request <= 0.05; no non-2xx."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--client-tpm", type=int, default=200_000)
    parser.add_argument("--sync", choices=("lease", "tally"), default="lease",
                        help="RATE_LIMIT_SYNC of both gateways")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-tokens-"))
    procs, urls = start(logs, args)
    try:
        rounds = [{name: one_round(urls[name], args, logs, f"{name}-{i}")
                   for name in ("off", "on")} for i in range(args.rounds)]
    finally:
        for proc in procs:
            proc.stop()
    out = ROOT / "load/results/bench_tokens.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))
    print(report(rounds, args))
    print(json.dumps([r["on"] for r in rounds]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
