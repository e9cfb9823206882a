"""The in-memory rate-limit store (tests, single-process dev, the simulator).

Same contract as the Table Storage adapters (tests/contract runs one suite over both): ETags
change on every write, conditional writes and deletes raise StoreConflict. `yield_every_op`
makes each call yield to the event loop so concurrent callers interleave as they would over a
network.
"""

from __future__ import annotations

import asyncio
import itertools

from function_app.core.store_errors import StoreConflict
from function_app.ratelimit.store import Fields, RowKey, StoredRow


class MemoryRateLimitStore:
    def __init__(self, *, yield_every_op: bool = False) -> None:
        self._rows: dict[RowKey, StoredRow] = {}
        self._etags = itertools.count(1)
        self._yield = yield_every_op

    async def _maybe_yield(self) -> None:
        if self._yield:
            await asyncio.sleep(0)

    async def read(self, key: RowKey) -> StoredRow | None:
        await self._maybe_yield()
        return self._rows.get(key)

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        await self._maybe_yield()
        current = self._rows.get(key)
        if etag is None and current is not None:
            raise StoreConflict("row exists")
        if etag is not None and (current is None or current.etag != etag):
            raise StoreConflict("row changed")
        new_etag = f'W/"{next(self._etags)}"'
        self._rows[key] = StoredRow(key, dict(fields), new_etag)
        return new_etag

    async def put(self, key: RowKey, fields: Fields) -> str:
        await self._maybe_yield()
        new_etag = f'W/"{next(self._etags)}"'
        self._rows[key] = StoredRow(key, dict(fields), new_etag)
        return new_etag

    async def query(self, partition: str) -> list[StoredRow]:
        await self._maybe_yield()
        return [row for key, row in self._rows.items() if key.partition == partition]

    async def delete(self, key: RowKey, etag: str) -> None:
        await self._maybe_yield()
        current = self._rows.get(key)
        if current is None:
            return
        if current.etag != etag:
            raise StoreConflict("row changed")
        del self._rows[key]

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        await self._maybe_yield()
        found = [
            row for row in self._rows.values()
            if isinstance(row.fields.get("ts"), float | int) and row.fields["ts"] < updated_before
        ]
        return found[:limit]

    async def close(self) -> None:
        return None
