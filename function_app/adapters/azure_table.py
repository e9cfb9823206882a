"""What the Table Storage adapters share: a table created the first time a call needs it (Table
Storage has no schema step), and the ETag-guarded write of one row. Errors stay the SDK's: each
store translates them into its own port's error types."""

from __future__ import annotations

import asyncio
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient


class LazyTable:
    """`await ready()` gives the table's client, creating the table once per process (again
    after `forget()`, when a call found it gone); concurrent first calls create it once."""

    def __init__(self, service: TableServiceClient, name: str) -> None:
        self._service, self._name = service, name
        self.client: TableClient = service.get_table_client(name)
        self._ready = False
        self._lock = asyncio.Lock()

    async def ready(self) -> TableClient:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await self._service.create_table_if_not_exists(self._name)
                    self._ready = True
        return self.client

    def forget(self) -> None:
        self._ready = False  # the table vanished: create it again on the next call


async def write_row(client: TableClient, row: dict[str, Any], etag: str | None) -> Any:
    """Create the row (`etag` None) or replace it only if unchanged since it was read; the
    answer's metadata (its "etag")."""
    if etag is None:
        return await client.create_entity(row)
    return await client.update_entity(row, mode=UpdateMode.REPLACE, etag=etag,
                                      match_condition=MatchConditions.IfNotModified)
