"""The KeyStore port: where key, tenant and usage records live (memory and Table adapters).

Keys are found by the SHA-256 of the whole key (never by the key). Usage rows are merged, not
replaced: `add_usage` adds a delta (requests, tokens, spend) and keeps the latest last_used, so
several instances can report the same key and day without losing each other's counts.
"""

from __future__ import annotations

from typing import Protocol

from .records import KeyRecord, TenantRecord, UsageRecord


class KeyStoreUnavailable(Exception):
    """The store could not be reached or answered an error (the message has no secret)."""


class KeyExists(Exception):
    """A key with that hash (or prefix) is already stored."""


class KeyStore(Protocol):
    async def get_key(self, key_hash: str) -> KeyRecord | None: ...

    async def create_key(self, record: KeyRecord) -> None:
        """Store a new key; KeyExists if its hash is stored already."""

    async def save_key(self, record: KeyRecord) -> None:
        """Replace the stored record of `record.key_hash` (revocation, changed limits)."""

    async def list_keys(self) -> list[KeyRecord]: ...

    async def get_tenant(self, name: str) -> TenantRecord | None: ...

    async def save_tenant(self, record: TenantRecord) -> None: ...

    async def list_tenants(self) -> list[TenantRecord]: ...

    async def add_usage(self, delta: UsageRecord) -> None:
        """Add `delta`'s counts to the (tenant, prefix, day) row, creating it if needed."""

    async def list_usage(self, tenant: str | None = None, since_day: str = "") -> list[UsageRecord]:
        """Usage rows of `tenant` (all tenants when None) for days >= since_day."""

    async def close(self) -> None: ...


def merged(old: UsageRecord | None, delta: UsageRecord) -> UsageRecord:
    if old is None:
        return delta
    return UsageRecord(old.tenant, old.prefix, old.day, old.requests + delta.requests,
                       old.tokens + delta.tokens, round(old.spend + delta.spend, 9),
                       max(old.last_used, delta.last_used))
