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


FULL_EVERY = 100  # young-generation collections per full one at most (CPython's default: 10)


def settle_collector() -> None:
    """Fewer and shorter full garbage collections for the rest of the worker's life.

    Every object alive once the gateway is built (the modules the worker, the app and the build
    imported; the gateway) moves out of the collector's generations (`gc.freeze`): they live as
    long as the process, and a full collection no longer scans them. And a full collection waits
    for FULL_EVERY collections of the middle generation instead of 10. With a thousand streams
    open, a full collection of the worker scanned ~180,000 objects and paused its loop ~390 ms,
    every stream's chunks waiting behind it; frozen, 75-280 ms; and each found no garbage at all
    (load/bench_streams.py --gc-watch, issue #26): reference counting frees what streams leave.
    What it costs: a reference cycle that reaches the oldest generation is freed later (the young
    generations are still collected as often). Nothing is collected before freezing: after the
    build only a few dozen objects are garbage, kept for good.
    """
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_EVERY)
