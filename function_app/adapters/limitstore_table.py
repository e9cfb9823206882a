"""Azure Table Storage adapters for the rate limiter: shared bucket rows and limit overrides.

Foreign errors stop here: ResourceExistsError / ResourceModifiedError (and a replace of a row
that vanished) become StoreConflict; every other SDK, network or timeout error becomes
StoreUnavailable. Tables are created on first use. The SDK's own retries are switched off
(retry_total=0): the limiter decides when to retry, with back-off, within its own deadline.

Connection: RATE_LIMIT_STORAGE_CONNECTION (a connection string; locally Azurite with 127.0.0.1)
or else TABLE_STORAGE_ENDPOINT with DefaultAzureCredential (managed identity in Azure).

Proxies: the SDK's aiohttp session trusts the environment by default, and aiohttp then asks a
worker thread twice on every call (a ~/.netrc look-up, then the proxy variables, walking the
environment): Python work and two thread hand-offs in each lease's round trip. The proxy
variables are read once at start instead: with none set (a Function App has none unless its
operator adds them) the session does not trust the environment; with HTTP(S)_PROXY set it
does, as before. A netrc entry was never usable here (aiohttp refuses one beside the SDK's
Authorization header). Figures: docs/perf/pass5-limiter.md.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from function_app.core.store_errors import StoreConflict, StoreRefused, StoreUnavailable
from function_app.core.table_keys import decode_key, encode_key
from function_app.ratelimit.limits import Limit
from function_app.ratelimit.store import Fields, Override, RowKey, StoredRow

from .azure_table import LazyTable, entity_of, eq, row_etag

log = logging.getLogger(__name__)
BUCKETS_TABLE = "ratelimits"
OVERRIDES_TABLE = "limitoverrides"
_KEYS = ("PartitionKey", "RowKey")
_UNAVAILABLE = (AzureError, OSError, asyncio.TimeoutError, ValueError)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    """The store error for a failed call: StoreRefused for 401/403 and a missing table."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    code = str(getattr(code, "value", code) or "")
    if status in (401, 403):
        return StoreRefused(f"storage refused the request: HTTP {status} {code}".strip())
    if code == "TableNotFound":
        return StoreRefused("the rate-limit table does not exist")
    return StoreUnavailable(str(exc) or type(exc).__name__)


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)  # EntityProperty (e.g. Int64) -> its value


def _fields(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _plain(value) for name, value in entity.items() if name not in _KEYS}


def _stored(row: Mapping[str, Any]) -> StoredRow:
    """A queried row (the service's JSON) as the limiter's StoredRow."""
    return StoredRow(RowKey(row["PartitionKey"], row["RowKey"]), _fields(entity_of(row)),
                     row_etag(row))


class TableRateLimitStore:
    """RateLimitStore over one table; PartitionKey/RowKey come from the limiter's RowKey."""

    def __init__(self, service: TableServiceClient, table_name: str = BUCKETS_TABLE) -> None:
        self._table = LazyTable(service, table_name)

    async def read(self, key: RowKey) -> StoredRow | None:
        try:
            row = await self._table.get(key.partition, key.row)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None  # a missing table: StoreRefused (created again)
        return None if row is None else StoredRow(key, _fields(entity_of(row)), row_etag(row))

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        entity = {"PartitionKey": key.partition, "RowKey": key.row, **fields}
        try:
            return await self._table.write(entity, etag)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise StoreConflict(type(exc).__name__) from None
        except ResourceNotFoundError:
            if etag is None:  # only a missing table makes a create 404
                self._table.forget()
                raise StoreRefused("the rate-limit table does not exist") from None
            raise StoreConflict("row vanished") from None
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None

    async def put(self, key: RowKey, fields: Fields) -> str:
        entity = {"PartitionKey": key.partition, "RowKey": key.row, **fields}
        try:
            return await self._table.upsert(entity)
        except ResourceNotFoundError:
            self._table.forget()
            raise StoreRefused("the rate-limit table does not exist") from None
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None

    async def query(self, partition: str) -> list[StoredRow]:
        try:
            rows = await self._table.query(eq("PartitionKey", partition))
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None
        return [_stored(row) for row in rows]

    async def delete(self, key: RowKey, etag: str) -> None:
        try:
            await self._table.delete(key.partition, key.row, etag)
        except ResourceModifiedError:
            raise StoreConflict("row changed") from None
        except ResourceNotFoundError:
            return
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        try:  # the filter as the SDK's parameter substitution wrote it for a float
            rows = await self._table.query(f"ts lt {float(updated_before)}", limit=limit)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None
        return [_stored(row) for row in rows]

    async def close(self) -> None:
        return None  # the shared service client is closed by LimitStorage.close


def override_from_entity(entity: Mapping[str, Any]) -> Override:
    """Parse an overrides row; raises ValueError when it is malformed.

    PartitionKey "client" or "route"; RowKey encode_key(id or path); rps (required, >= 0);
    burst (default 2 * rps); shadow (default false; bool or "true"/"false").
    """
    kind = str(entity.get("PartitionKey", ""))
    if kind not in ("client", "route"):
        raise ValueError(f"unknown override kind {kind!r}")
    key = decode_key(str(entity.get("RowKey", "")))
    try:
        rps = float(_plain(entity["rps"]))
        burst_raw = _plain(entity.get("burst"))
        burst = 2 * rps if burst_raw in (None, "") else float(burst_raw)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"override {kind}/{key}: {exc}") from None
    shadow = _plain(entity.get("shadow", False))
    if isinstance(shadow, str):
        shadow = shadow.strip().lower() in ("1", "true", "yes", "on")
    return Override(kind, key, Limit(rps, burst, bool(shadow)))


class TableOverrideStore:
    """OverrideStore over the `limitoverrides` table."""

    def __init__(self, service: TableServiceClient, table_name: str = OVERRIDES_TABLE) -> None:
        self._table = LazyTable(service, table_name)

    async def read_all(self) -> list[Override]:
        overrides: list[Override] = []
        try:
            rows = await self._table.query(None)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None
        for row in rows:
            try:
                overrides.append(override_from_entity(entity_of(row)))
            except ValueError as exc:
                log.warning("skipping malformed rate-limit override: %s", exc)
        return overrides

    async def put(self, override: Override) -> None:
        entity = {
            "PartitionKey": override.kind, "RowKey": encode_key(override.key),
            "rps": float(override.limit.rate), "burst": float(override.limit.burst),
            "shadow": bool(override.limit.shadow),
        }
        try:
            client = await self._table.ready()
            await client.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None

    async def remove(self, kind: str, key: str) -> None:
        try:
            client = await self._table.ready()
            await client.delete_entity(kind, encode_key(key))
        except ResourceNotFoundError:
            return
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None

    async def close(self) -> None:
        return None


@dataclass
class LimitStorage:
    """The two stores over one service client; `close` releases the client and credential."""

    buckets: TableRateLimitStore
    overrides: TableOverrideStore
    service: TableServiceClient
    credential: Any = None

    async def close(self) -> None:
        await self.service.close()
        if self.credential is not None:
            await self.credential.close()


def open_limit_storage(
    connection_string: str = "", endpoint: str = "", *,
    buckets_table: str = BUCKETS_TABLE, overrides_table: str = OVERRIDES_TABLE,
) -> LimitStorage | None:
    """Stores from a connection string, else from an endpoint with DefaultAzureCredential;
    None when neither is set (the caller then uses the memory stores: single instance only).
    """
    options: dict[str, Any] = {"retry_total": 0, "use_env_settings": env_proxies()}
    credential = None
    if connection_string:
        service = TableServiceClient.from_connection_string(connection_string, **options)
    elif endpoint:
        from azure.identity.aio import DefaultAzureCredential  # only needed in Azure

        credential = DefaultAzureCredential()
        service = TableServiceClient(endpoint, credential=credential, **options)
    else:
        return None
    return LimitStorage(
        TableRateLimitStore(service, buckets_table), TableOverrideStore(service, overrides_table),
        service, credential,
    )


def env_proxies() -> bool:
    """Whether the environment names a proxy (HTTP_PROXY, HTTPS_PROXY, ...): only then must
    the SDK's session consult it on each call (see the module docstring)."""
    return bool(urllib.request.getproxies())
