"""CPU per request with GATEWAY_AUTH=required vs none, in one process (no network, no wrk).

    .venv/bin/python load/bench_auth_cpu.py

The registered handler is called directly with a fake backend (httpx.MockTransport) and an
in-memory key store; process time per request is measured over interleaved rounds, so other
processes on a shared machine move the figure much less than a wrk run's throughput. Prints the
median microseconds per request of each and their ratio (none / required: 1.0 means free).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from function_app import app as app_module  # noqa: E402
from function_app.adapters.httpx_upstream import HttpxUpstream  # noqa: E402
from function_app.adapters.keystore_memory import MemoryKeyStore  # noqa: E402
from function_app.app import proxy  # noqa: E402
from function_app.settings.load import load_settings  # noqa: E402
from function_app.tenants.keys import generate, key_hash, prefix_of  # noqa: E402
from function_app.tenants.records import KeyRecord  # noqa: E402
from function_app.wiring.build import build_gateway  # noqa: E402
from tests.support.handler_calls import make_request  # noqa: E402

LOOSE = {"RATE_LIMIT_STORAGE_CONNECTION": "", "GLOBAL_RPS": "1e6", "GLOBAL_BURST": "1e6",
         "CLIENT_RPS": "1e6", "CLIENT_BURST": "1e6"}


async def gateway(auth: str):
    store = MemoryKeyStore()
    key = generate()
    await store.create_key(KeyRecord(key_hash(key), prefix_of(key), "bench", "cpu", time.time()))
    upstream = HttpxUpstream(httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    settings = load_settings({"GATEWAY_AUTH": auth, **LOOSE})
    return await build_gateway(settings, upstream=upstream, key_store=store), key


async def cpu_per_request(built, key: str, n: int) -> float:
    app_module.gateway.install(built)
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    requests = [make_request("POST", "/infer/node", b"{}", headers) for _ in range(n)]
    started = time.process_time()
    for request in requests:
        await proxy(request)
    return (time.process_time() - started) / n * 1e6


async def main(rounds: int = 8, n: int = 1500) -> None:
    logging.disable(logging.WARNING)
    built = {auth: await gateway(auth) for auth in ("none", "required")}
    for auth in built:
        await cpu_per_request(*built[auth], 300)  # warm up
    samples: dict[str, list[float]] = {auth: [] for auth in built}
    for _ in range(rounds):
        for auth in built:
            samples[auth].append(await cpu_per_request(*built[auth], n))
    med = {auth: statistics.median(v) for auth, v in samples.items()}
    print(f"CPU per request: none {med['none']:.1f} us, required {med['required']:.1f} us, "
          f"ratio none/required {med['none'] / med['required']:.3f} (median of {rounds})")


if __name__ == "__main__":
    asyncio.run(main())
