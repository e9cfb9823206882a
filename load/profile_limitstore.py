"""What one storage round trip of the limiter costs the gateway's process: Python calls (cProfile)
and CPU microseconds, against a local Azurite, through `open_limit_storage` as the gateway uses
it (a lease is one conditional write; a read when its cached row is not trusted).

    .venv/bin/python load/profile_limitstore.py [--calls 400] [--rounds 3]

Two clients are compared in interleaved rounds: as built with no proxy variable in the
environment, and with HTTPS_PROXY set (and NO_PROXY=127.0.0.1, so Azurite is still reached
directly), which keeps the SDK's default of reading the environment on every call.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from function_app.adapters.limitstore_table import open_limit_storage  # noqa: E402
from function_app.ratelimit.store import RowKey  # noqa: E402
from scripts.azurite import Azurite  # noqa: E402

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def environment(proxied: bool) -> None:
    for name in PROXY_VARS:
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    if proxied:
        os.environ.update({"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"})


async def trips(storage, n: int) -> None:
    key = RowKey("bench", uuid.uuid4().hex)
    etag = await storage.buckets.write(key, {"tokens": 0.0}, None)
    for i in range(n):  # a lease's write (conditional on the last ETag), then a read
        etag = await storage.buckets.write(key, {"tokens": float(i)}, etag)
        await storage.buckets.read(key)


async def measure(connection: str, proxied: bool, n: int) -> tuple[float, float]:
    """(calls, CPU us) per round trip."""
    environment(proxied)
    storage = open_limit_storage(connection, buckets_table=f"rl{uuid.uuid4().hex[:10]}")
    try:
        await trips(storage, 20)  # warm up: table made, connection open
        began = time.process_time()
        await trips(storage, n)
        cpu = (time.process_time() - began) / (2 * n) * 1e6
        profile = cProfile.Profile()
        profile.enable()
        await trips(storage, n)
        profile.disable()
        calls = pstats.Stats(profile).total_calls / (2 * n)  # type: ignore[attr-defined]
    finally:
        await storage.close()
    return calls, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="write + read pairs per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {"no proxy variable": [],
                                                      "HTTPS_PROXY set": []}
    with tempfile.TemporaryDirectory() as logs:
        azurite = Azurite(Path(logs) / "azurite").start()
        try:
            for n in range(args.rounds):
                order = [False, True] if n % 2 == 0 else [True, False]
                for proxied in order:
                    name = "HTTPS_PROXY set" if proxied else "no proxy variable"
                    figures[name].append(asyncio.run(
                        measure(azurite.connection_string, proxied, args.calls)))
        finally:
            azurite.stop()
    for name, rows in figures.items():
        cpus = ", ".join(f"{cpu:.0f}" for _, cpu in rows)
        calls, best = min(c for c, _ in rows), min(u for _, u in rows)
        print(f"{name}: {calls:.0f} Python calls and {best:.0f} us CPU per storage round trip "
              f"(best of {len(rows)} rounds: {cpus} us)")


if __name__ == "__main__":
    main()
