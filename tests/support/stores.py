"""Stores for tests: wrappers that can be taken down (or slowed) on command, and an in-memory
override store (the gateway has none: without storage it reads no overrides)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.core.store_errors import StoreUnavailable
from function_app.ratelimit.store import Fields, Override, RowKey, StoredRow


class FlakyRateLimitStore:
    """Wraps a store; while `down` every call fails, and `delay_s` makes every call slow.

    `fail_with` picks the exception (default StoreUnavailable; any exception type works, to
    check that the limiter also survives errors a real adapter should have translated).
    `calls` counts calls that reached the wrapper, `passed` the ones forwarded.
    """

    def __init__(self, inner: MemoryRateLimitStore) -> None:
        self.inner = inner
        self.down = False
        self.delay_s = 0.0
        self.fail_with: Callable[[], Exception] = lambda: StoreUnavailable("injected outage")
        self.calls = 0
        self.passed = 0

    async def _gate(self) -> None:
        self.calls += 1
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if self.down:
            raise self.fail_with()
        self.passed += 1

    async def read(self, key: RowKey) -> StoredRow | None:
        await self._gate()
        return await self.inner.read(key)

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        await self._gate()
        return await self.inner.write(key, fields, etag)

    async def put(self, key: RowKey, fields: Fields) -> str:
        await self._gate()
        return await self.inner.put(key, fields)

    async def query(self, partition: str) -> list[StoredRow]:
        await self._gate()
        return await self.inner.query(partition)

    async def delete(self, key: RowKey, etag: str) -> None:
        await self._gate()
        await self.inner.delete(key, etag)

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        await self._gate()
        return await self.inner.scan(updated_before, limit)

    async def close(self) -> None:
        await self.inner.close()


class FlakyRoutingStore:
    """Wraps a routing store (breakers, probes, lease); while `down` every call raises the
    routing store's StoreUnavailable, as an unreachable Table would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.inner, name)

        async def gated(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable("injected outage")
            return await method(*args, **kwargs)

        return gated


class MemoryOverrideStore:
    """An OverrideStore in memory (the gateway reads none without storage: OverrideSource
    takes None)."""

    def __init__(self, overrides: list[Override] | None = None) -> None:
        self._items: dict[tuple[str, str], Override] = {}
        for item in overrides or []:
            self._items[(item.kind, item.key)] = item

    async def read_all(self) -> list[Override]:
        return list(self._items.values())

    async def put(self, override: Override) -> None:
        self._items[(override.kind, override.key)] = override

    async def remove(self, kind: str, key: str) -> None:
        self._items.pop((kind, key), None)

    async def close(self) -> None:
        return None
