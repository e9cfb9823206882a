"""Calls per chunk of a proxied stream's body as the telemetry stage hands it on: the upstream
body (adapters/deadline_body.DeadlineBody) with its own BodyWatch taken, against the same body
inside core/body_watch.watched, the layer the stage wrapped it in before (docs/perf/
pass11-route.md). cProfile counts, deterministic.

    .venv/bin/python load/chunk_watch_calls.py
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from function_app.adapters.deadline_body import DeadlineBody
from function_app.core.body_watch import BodyWatch, watched
from function_app.core.errors import UpstreamError

CHUNKS = 20000


async def _source():
    for _ in range(CHUNKS):
        yield b"data: x\n\n"


async def _release():
    pass


async def calls_per_chunk(layer: bool) -> float:
    loop = asyncio.get_running_loop()
    body = DeadlineBody(_source(), loop.time() + 3600, _release, lambda e: UpstreamError())
    body.on_end(lambda failure: None)  # routing's release of the member
    body.on_end(lambda failure: None)  # the attempt's span
    if layer:
        watch = BodyWatch()
        watch.take(lambda: None, lambda error, exc: None)
        chunks = watched(body, watch)
    else:
        assert body.watch.take(lambda: None, lambda error, exc: None)
        chunks = body
    profile = cProfile.Profile()
    profile.enable()
    n = 0
    async for _ in chunks:
        n += 1
    profile.disable()
    return sum(row[1] for row in pstats.Stats(profile).stats.values()) / n


async def main() -> None:
    for layer, name in ((True, "in the watched layer"), (False, "with its own watch")):
        print(f"a proxied stream's body {name}: {await calls_per_chunk(layer):.2f} calls/chunk")


if __name__ == "__main__":
    asyncio.run(main())
