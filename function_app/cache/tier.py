"""The port every cache tier implements, memory and shared alike."""

from __future__ import annotations

from typing import Any, Protocol

from .entry import CacheEntry


class CacheTier(Protocol):
    """A store of entries by key. `get` returns None for a missing or expired entry; `put`
    keeps the entry until `entry.expires_at()` at most. Shared tiers may raise on I/O failure:
    the tier stack (cache/tiers.py) bounds their time and turns failures into misses."""

    name: str

    async def get(self, key: str) -> CacheEntry | None: ...

    async def put(self, key: str, entry: CacheEntry) -> None: ...

    async def delete(self, key: str) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
