"""The narrow storage interfaces the limiter depends on (implemented in adapters/limitstore_*).

`RateLimitStore` is a table of small rows with optimistic concurrency: every row has an ETag and
every change is conditional on it. Errors are translated at the adapter boundary into the types
of core/store_errors.py (StoreConflict, StoreUnavailable, StoreRefused); nothing else may escape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from function_app.ratelimit.limits import Limit

Fields = Mapping[str, float | str]


@dataclass(frozen=True)
class RowKey:
    partition: str
    row: str


@dataclass(frozen=True)
class StoredRow:
    key: RowKey
    fields: Fields
    etag: str


class RateLimitStore(Protocol):
    async def read(self, key: RowKey) -> StoredRow | None:
        """The row, or None when it does not exist."""

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        """Create (etag None) or replace the row if its ETag still matches; return the new ETag.

        Raises StoreConflict when the row exists (create) or changed or vanished (replace).
        """

    async def delete(self, key: RowKey, etag: str) -> None:
        """Delete the row if its ETag matches; a missing row is fine; a changed one conflicts."""

    async def put(self, key: RowKey, fields: Fields) -> str:
        """Create or replace the row whatever its ETag (a row only one writer owns); the ETag."""

    async def query(self, partition: str) -> list[StoredRow]:
        """Every row of one partition (the tally's instance rows: one query reads a group)."""

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        """Up to `limit` rows whose numeric field `ts` is below `updated_before`."""

    async def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class Override:
    """A per-client or per-route limit from the overrides table (kind "client" or "route")."""

    kind: str
    key: str
    limit: Limit


class OverrideStore(Protocol):
    async def read_all(self) -> list[Override]:
        """Every valid override; malformed rows are skipped. Raises StoreUnavailable."""

    async def put(self, override: Override) -> None:
        """Create or replace one override (operators' tooling and tests)."""

    async def remove(self, kind: str, key: str) -> None:
        """Delete one override; a missing one is fine."""

    async def close(self) -> None:
        """Release connections."""
