"""The gateway of the process, built on first use.

Kept apart from build.py so that importing the app (function indexing, on every cold start)
does not import what building the gateway needs: the HTTP client, the storage SDKs, telemetry,
the cache tiers. The build imports them, once, when the first request arrives.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gateway import Gateway

# Young collections start at this many net new objects (Python's default: 2,000). The objects
# of the requests in flight (32 at once: several thousand) crossed 2,000 over and over, and each
# collection walked them: 60 young collections per 1,000 requests, 47 us per request of the
# worker's CPU. At 10,000 they ran 0.5 times per 1,000 requests (2 us per request); requests
# leave no cyclic garbage behind (profile_worker_calls.py --mode garbage), so what waits for a
# collection is at most this many objects.
YOUNG_THRESHOLD = 10_000


class LazyGateway:
    """Builds the gateway on first use, from an environment read at that moment (never at import,
    so a bad setting cannot break function indexing), and keeps it for the process's life.

    With `freeze` (the worker's own gateway), the collector is settled once the build is done
    (`settle_collector`)."""

    def __init__(self, environ: Callable[[], Mapping[str, str]], freeze: bool = False):
        self._environ = environ
        self._freeze = freeze
        self._gateway: Gateway | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Gateway:
        if self._gateway is None:
            async with self._lock:
                if self._gateway is None:
                    # Imported here, not at the top: main.py (function indexing, every cold start)
                    # does not pay for the adapters, SDKs and exporters the build imports.
                    from ..settings.load import load_settings
                    from .build import build_gateway

                    self._gateway = await build_gateway(load_settings(self._environ()))
                    if self._freeze:
                        settle_collector()
        return self._gateway

    def install(self, built: Gateway | None) -> None:
        """Use `built` instead of building one (tests wire gateways with fake adapters)."""
        self._gateway = built

    async def aclose(self) -> None:
        if self._gateway is not None:
            gateway, self._gateway = self._gateway, None
            await gateway.aclose()


FULL_EVERY = 100  # middle-generation collections per full one at most (CPython's default: 10)


def settle_collector() -> None:
    """Once a process, after the worker's gateway is built: start-up's objects leave the
    collector's generations, young collections wait for YOUNG_THRESHOLD net new objects, and a
    full collection for FULL_EVERY middle-generation ones. A later call changes nothing (an
    operator's own tuning after the build stays).

    Frozen (`gc.freeze`): every object alive once the build is done (modules, the app, the
    worker's server, the gateway: about 90,000 in the worker). They live as long as the process,
    and every full collection walked them: about 20 us per request in the worker
    (`load/profile_worker_calls.py --mode cpu`: old-generation time 22 -> 0.4 us per request),
    and with a thousand streams open a pause of ~390 ms of the worker's loop, every stream's
    chunks waiting behind it (`load/bench_streams.py --gc-watch`; 75-280 ms frozen, none with
    full collections spaced). Those full collections found no garbage: reference counting frees
    what requests and streams leave. What it costs: a reference cycle that reaches the oldest
    generation is freed later, and one among frozen objects dropped later never (a bounded,
    one-time amount). Nothing is collected before freezing, so the first request does not wait
    for a collection.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, FULL_EVERY)
