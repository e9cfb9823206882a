"""KeyStore over one Azure Table (GATEWAY_KEYS_TABLE, default `gatewaykeys`).

Rows: PartitionKey "key", RowKey = SHA-256 of the key (hex) -> a KeyRecord (never the key);
PartitionKey "tenant", RowKey = tenant name -> a TenantRecord; PartitionKey "usage-<tenant>",
RowKey "<day>_<prefix>" -> a UsageRecord, merged with ETag-conditional replaces. Every SDK,
network or timeout error becomes KeyStoreUnavailable. The storage settings are the limiter's
(a connection string locally, DefaultAzureCredential with the endpoint in Azure).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EdmType, EntityProperty, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from function_app.tenants.records import (
    KeyRecord,
    TenantRecord,
    UsageRecord,
    from_fields,
    to_fields,
)
from function_app.tenants.store import KeyExists, KeyStoreUnavailable, merged

from .azure_table import LazyTable, write_row

KEYS_TABLE = "gatewaykeys"
KEY_PK, TENANT_PK, USAGE_PK = "key", "tenant", "usage-"
log = logging.getLogger(__name__)
_UNAVAILABLE = (AzureError, OSError, asyncio.TimeoutError)
MERGE_RETRIES = 8


def _row(pk: str, rk: str, record: KeyRecord | TenantRecord | UsageRecord) -> dict[str, Any]:
    """The entity of `record`. The SDK writes a bare int as Int32 and refuses one past it (a
    TypeError): token budgets go up to 10^15 and usage sums grow, so those go as Int64 (read
    back as EntityProperty, which `_plain` unwraps)."""
    return {"PartitionKey": pk, "RowKey": rk,
            **{name: _wide(value) for name, value in to_fields(record).items()}}


def _wide(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -2**31 <= value < 2**31:
        return EntityProperty(value, EdmType.INT64)
    return value


def _plain(entity: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in entity.items()}


def _etag(entity: Any) -> str | None:
    return None if entity is None else entity.metadata["etag"]


class TableKeyStore:
    def __init__(self, service: TableServiceClient, table: str = KEYS_TABLE,
                 credential: Any = None, timeout_s: float = 2.0) -> None:
        self._service, self._credential = service, credential
        self._lazy = LazyTable(service, table)
        self._timeout = timeout_s

    async def _call(self, make):
        """Run one SDK call under the deadline; foreign errors become KeyStoreUnavailable."""
        try:
            return await asyncio.wait_for(make(await self._lazy.ready()), self._timeout)
        except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError):
            raise
        except _UNAVAILABLE as exc:
            raise KeyStoreUnavailable(type(exc).__name__) from None

    async def _get(self, pk: str, rk: str) -> dict[str, Any] | None:
        try:
            return _plain(await self._call(lambda t: t.get_entity(pk, rk)))
        except ResourceNotFoundError:
            return None

    async def _query(self, flt: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async def collect(table: TableClient) -> list[dict[str, Any]]:
            return [_plain(e) async for e in table.query_entities(flt, parameters=params)]

        try:
            return await self._call(collect)
        except ResourceNotFoundError:
            return []

    async def get_key(self, key_hash: str) -> KeyRecord | None:
        entity = await self._get(KEY_PK, key_hash)
        if not entity:
            return None
        try:
            return from_fields(KeyRecord, entity)
        except ValueError:  # a hand-edited row: refuse the key rather than fail the request
            log.warning("malformed key row %s; the key is refused", entity.get("prefix", "?"))
            return None

    async def create_key(self, record: KeyRecord) -> None:
        entity = _row(KEY_PK, record.key_hash, record)
        try:
            await self._call(lambda t: t.create_entity(entity))
        except ResourceExistsError:
            raise KeyExists(record.prefix) from None

    async def save_key(self, record: KeyRecord) -> None:
        entity = _row(KEY_PK, record.key_hash, record)
        await self._call(lambda t: t.upsert_entity(entity, mode=UpdateMode.REPLACE))

    async def list_keys(self) -> list[KeyRecord]:
        rows = await self._query("PartitionKey eq @pk", {"pk": KEY_PK})
        return sorted((from_fields(KeyRecord, r) for r in rows),
                      key=lambda r: (r.tenant, r.created))

    async def get_tenant(self, name: str) -> TenantRecord | None:
        entity = await self._get(TENANT_PK, name)
        return from_fields(TenantRecord, entity) if entity else None

    async def save_tenant(self, record: TenantRecord) -> None:
        entity = _row(TENANT_PK, record.name, record)
        await self._call(lambda t: t.upsert_entity(entity, mode=UpdateMode.REPLACE))

    async def list_tenants(self) -> list[TenantRecord]:
        rows = await self._query("PartitionKey eq @pk", {"pk": TENANT_PK})
        return sorted((from_fields(TenantRecord, r) for r in rows), key=lambda r: r.name)

    async def add_usage(self, delta: UsageRecord) -> None:
        pk, rk = USAGE_PK + delta.tenant, f"{delta.day}_{delta.prefix}"
        for _ in range(MERGE_RETRIES):
            try:
                entity = await self._call(lambda t: t.get_entity(pk, rk))
            except ResourceNotFoundError:
                entity = None
            old = from_fields(UsageRecord, _plain(entity)) if entity is not None else None
            row = _row(pk, rk, merged(old, delta))
            try:
                await self._call(partial(write_row, row=row, etag=_etag(entity)))
                return
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another instance wrote first: read again and add on top
        raise KeyStoreUnavailable("usage row kept changing")

    async def list_usage(self, tenant: str | None = None, since_day: str = "") -> list[UsageRecord]:
        if tenant is None:
            flt = "PartitionKey ge @lo and PartitionKey lt @hi and RowKey ge @since"
            params = {"lo": USAGE_PK, "hi": USAGE_PK[:-1] + ".", "since": since_day}
        else:
            flt = "PartitionKey eq @pk and RowKey ge @since"
            params = {"pk": USAGE_PK + tenant, "since": since_day}
        rows = [from_fields(UsageRecord, r) for r in await self._query(flt, params)]
        return sorted(rows, key=lambda u: (u.tenant, u.day, u.prefix))

    async def close(self) -> None:
        await self._service.close()
        if self._credential is not None:
            await self._credential.close()


def open_key_store(connection_string: str = "", endpoint: str = "", *,
                   table: str = KEYS_TABLE) -> TableKeyStore | None:
    """The store from a connection string, else an endpoint with DefaultAzureCredential;
    None when neither is set."""
    options: dict[str, Any] = {"retry_total": 1}
    if connection_string:
        return TableKeyStore(TableServiceClient.from_connection_string(connection_string,
                                                                       **options), table)
    if endpoint:
        from azure.identity.aio import DefaultAzureCredential  # only needed in Azure

        credential = DefaultAzureCredential()
        return TableKeyStore(TableServiceClient(endpoint, credential=credential, **options),
                             table, credential)
    return None
