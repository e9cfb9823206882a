"""The narrow storage interfaces the limiter depends on (implemented in adapters/limitstore_*).

`RateLimitStore` is a table of small rows with optimistic concurrency: every row has an ETag and
every change is conditional on it. Errors are translated at the adapter boundary into two types:
`StoreConflict` (someone else changed or created the row: re-read and retry) and
`StoreUnavailable` (storage is down, slow or refused: back off; its subclass `StoreRefused` marks
a misconfiguration). Nothing else may escape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .model import Limit

Fields = Mapping[str, float | str]


class StoreError(Exception):
    """Base of the errors a store may raise."""


class StoreConflict(StoreError):
    """The row changed since it was read (HTTP 412), already exists (409) or has gone."""


class StoreUnavailable(StoreError):
    """Storage failed, timed out or refused the request."""


class StoreRefused(StoreUnavailable):
    """Storage answered but refused us: credentials or permissions (401/403) or a missing table.

    A misconfiguration rather than an outage: handled like StoreUnavailable (failure mode,
    back-off, retries) but reported loudly. The message names the cause, never a secret.
    """


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
