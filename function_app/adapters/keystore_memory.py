"""KeyStore in memory: one process only (tests, and a gateway without table storage)."""

from __future__ import annotations

from function_app.tenants.records import KeyRecord, TenantRecord, UsageRecord
from function_app.tenants.store import KeyExists, merged


class MemoryKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, KeyRecord] = {}
        self.tenants: dict[str, TenantRecord] = {}
        self.usage: dict[tuple[str, str, str], UsageRecord] = {}
        self.reads = 0

    async def get_key(self, key_hash: str) -> KeyRecord | None:
        self.reads += 1
        return self.keys.get(key_hash)

    async def create_key(self, record: KeyRecord) -> None:
        if record.key_hash in self.keys:
            raise KeyExists(record.prefix)
        self.keys[record.key_hash] = record

    async def save_key(self, record: KeyRecord) -> None:
        self.keys[record.key_hash] = record

    async def list_keys(self) -> list[KeyRecord]:
        return sorted(self.keys.values(), key=lambda r: (r.tenant, r.created))

    async def get_tenant(self, name: str) -> TenantRecord | None:
        return self.tenants.get(name)

    async def save_tenant(self, record: TenantRecord) -> None:
        self.tenants[record.name] = record

    async def list_tenants(self) -> list[TenantRecord]:
        return sorted(self.tenants.values(), key=lambda r: r.name)

    async def add_usage(self, delta: UsageRecord) -> None:
        key = (delta.tenant, delta.prefix, delta.day)
        self.usage[key] = merged(self.usage.get(key), delta)

    async def list_usage(self, tenant: str | None = None, since_day: str = "") -> list[UsageRecord]:
        rows = [u for u in self.usage.values()
                if (tenant is None or u.tenant == tenant) and u.day >= since_day]
        return sorted(rows, key=lambda u: (u.tenant, u.day, u.prefix))

    async def close(self) -> None:
        return None
