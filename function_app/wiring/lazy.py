"""The gateway of the process, built on first use.

Kept apart from build.py so that importing the app (function indexing, on every cold start)
does not import what building the gateway needs: the HTTP client, the storage SDKs, telemetry,
the cache tiers. The build imports them, once, when the first request arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

# The collector's start-up policy lives in collector.py (main.py imports it before anything
# else); its names stay importable from here.
from .collector import FULL_EVERY, YOUNG_THRESHOLD, settle_collector, start_up_objects

__all__ = ["FULL_EVERY", "YOUNG_THRESHOLD", "LazyGateway", "settle_collector",
           "start_up_objects"]

if TYPE_CHECKING:
    from .gateway import Gateway


class LazyGateway:
    """Builds the gateway on first use, from an environment read at that moment (never at import,
    so a bad setting cannot break function indexing), and keeps it for the process's life.

    With `freeze` (the worker's own gateway), the build runs with the collector paused and the
    collector is settled once the build is done (`start_up_objects`, `settle_collector`)."""

    def __init__(self, environ: Callable[[], Mapping[str, str]], freeze: bool = False):
        self._environ = environ
        self._freeze = freeze
        # The built gateway, or None until the first `get` builds it: read by the request path
        # (`lazy.ready or await lazy.get()`), which saves a coroutine a request once built.
        self.ready: Gateway | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Gateway:
        if self.ready is None:
            async with self._lock:
                if self.ready is None:
                    if self._freeze:
                        with start_up_objects():
                            self.ready = await self._build()
                        settle_collector()
                    else:
                        self.ready = await self._build()
        return self.ready

    async def _build(self) -> Gateway:
        # Imported here, not at the top: main.py (function indexing, every cold start) does not
        # pay for the adapters, SDKs and exporters the build imports. Every setting is read and
        # validated by load_settings, here, before anything is built (a bad one: SettingsError).
        from ..settings.load import load_settings
        from .build import build_gateway

        return await build_gateway(load_settings(self._environ()))

    def install(self, built: Gateway | None) -> None:
        """Use `built` instead of building one (tests wire gateways with fake adapters)."""
        self.ready = built

    async def aclose(self) -> None:
        if self.ready is not None:
            gateway, self.ready = self.ready, None
            await gateway.aclose()
