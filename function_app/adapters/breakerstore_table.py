"""Azure Table Storage for routing: breaker rows, probe results and the health-check lease.

One table (ROUTING_TABLE); PartitionKey "breaker", "probe" or "lease", RowKey the encoded
backend (or lease) name. Breaker rows and the lease are ETag-guarded; probe rows are upserts.
SDK errors become StoreConflict / StoreUnavailable here, and SDK retries are off (retry_total=0):
a breaker must not wait on storage.
"""

from __future__ import annotations

import asyncio
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables.aio import TableServiceClient

from function_app.core.store_errors import StoreConflict, StoreUnavailable
from function_app.core.table_keys import decode_key, encode_key

from ..routing.breaker import SharedState
from ..routing.store import BreakerRow, ProbeResult
from .azure_table import LazyTable, eq, row_etag
from .limitstore_table import env_proxies

BREAKER, PROBE, LEASE = "breaker", "probe", "lease"
_UNAVAILABLE = (AzureError, OSError, asyncio.TimeoutError, ValueError)


def _breaker(e: dict[str, Any]) -> BreakerRow:
    return BreakerRow(decode_key(e["RowKey"]), SharedState(
        str(e["state"]), float(e["since"]), float(e.get("until", 0.0)),
        str(e.get("cause", ""))), row_etag(e))


def _probe_row(result: ProbeResult) -> dict[str, Any]:
    return {"PartitionKey": PROBE, "RowKey": encode_key(result.backend), "ok": result.ok,
            "at": float(result.at), "latency_ms": float(result.latency_ms),
            "status": int(result.status)}


def _probe(e: dict[str, Any]) -> ProbeResult:
    return ProbeResult(decode_key(e["RowKey"]), bool(e["ok"]), float(e["at"]),
                       float(e["latency_ms"]), int(e.get("status", 0)))


class TableRoutingStore:
    def __init__(self, service: TableServiceClient, table: str, *, owns_service: bool = False):
        self._service, self._owns = service, owns_service
        self._lazy = LazyTable(service, table)
        # Lease name -> (holder, ETag) of this store's last successful take of it.
        self._held: dict[str, tuple[str, str]] = {}

    async def _query(self, *partitions: str) -> list[dict[str, Any]]:
        """The partitions' rows as the service's JSON objects (azure_table.LazyTable.query:
        these reads run every BREAKER_CACHE_S, the gateway's most frequent storage call)."""
        try:
            return await self._lazy.query(" or ".join(eq("PartitionKey", p) for p in partitions))
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from None

    async def _write(self, entity: dict[str, Any], etag: str | None) -> str:
        try:
            return await self._lazy.write(entity, etag)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise StoreConflict(type(exc).__name__) from None
        except ResourceNotFoundError as exc:
            if etag is None:  # only a missing table makes a create 404
                self._lazy.forget()
                raise StoreUnavailable(str(exc)) from None
            raise StoreConflict("row vanished") from None
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from None

    async def read_breakers(self) -> list[BreakerRow]:
        return [_breaker(e) for e in await self._query(BREAKER)]

    async def read_both(self) -> tuple[list[BreakerRow], list[ProbeResult]]:
        rows = await self._query(BREAKER, PROBE)
        return ([_breaker(e) for e in rows if e["PartitionKey"] == BREAKER],
                [_probe(e) for e in rows if e["PartitionKey"] == PROBE])

    async def write_breaker(self, backend: str, state: SharedState, etag: str | None) -> str:
        return await self._write({"PartitionKey": BREAKER, "RowKey": encode_key(backend),
                                  "state": state.state, "since": float(state.since),
                                  "until": float(state.until), "cause": state.cause}, etag)

    async def record_probe(self, result: ProbeResult) -> None:
        try:
            await self._lazy.upsert(_probe_row(result))
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from None

    async def record_probes(self, results: list[ProbeResult]) -> None:
        """Every result as one entity group transaction (one partition, at most 100 rows a
        batch): the same upserts, one storage call instead of one per backend."""
        rows = list({r.backend: _probe_row(r) for r in results}.values())  # a row once
        try:
            for start in range(0, len(rows), 100):
                await self._lazy.upsert_all(rows[start:start + 100])
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from None

    async def read_probes(self) -> list[ProbeResult]:
        return [_probe(e) for e in await self._query(PROBE)]

    async def take_lease(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        key = encode_key(name)
        entity = {"PartitionKey": LEASE, "RowKey": key, "holder": holder,
                  "until": float(now + ttl_s)}
        held = self._held.get(name)
        if held is not None and held[0] == holder:
            # Renewed without reading it first: the ETag of our own last write still matches
            # only if nobody wrote the row since, when reading it would have found us.
            try:
                self._held[name] = (holder, await self._write(entity, held[1]))
                return True
            except StoreConflict:
                del self._held[name]  # someone wrote it since: read it, as without a hold
        try:
            current = await self._lazy.get(LEASE, key)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from None
        if current is not None and current["holder"] != holder and \
                float(current["until"]) > now:
            return False
        try:
            etag = await self._write(entity, None if current is None else row_etag(current))
        except StoreConflict:
            return False  # another instance took it in between
        self._held[name] = (holder, etag)
        return True

    async def close(self) -> None:
        if self._owns:
            await self._service.close()


def open_routing_store(connection_string: str, endpoint: str, table: str, *,
                       service: TableServiceClient | None = None) -> TableRoutingStore | None:
    """The store from a connection string, else an endpoint with DefaultAzureCredential;
    None when neither is set (breakers then live in each instance only).

    `service`: the limiter's client of the same account (wiring passes it), used and left
    open (its owner closes it). One client is one connection pool: the breakers' refresh
    (every BREAKER_CACHE_S) keeps a connection to the account open, and the limiter's first
    lease after a pause takes it instead of connecting again (Azurite drops an idle
    connection after 5 s, aiohttp its own after 15 s; in Azure a new one is a TLS handshake).
    Figures: docs/perf/pass8-lease.md."""
    if service is not None:
        return TableRoutingStore(service, table)
    # The proxy environment read once (limitstore_table.py, "Proxies"): the breaker rows are
    # re-read every BREAKER_CACHE_S, and each call looked up ~/.netrc and every environment
    # variable in worker threads when no proxy was set.
    options: dict[str, Any] = {"retry_total": 0, "use_env_settings": env_proxies()}
    if connection_string:
        service = TableServiceClient.from_connection_string(connection_string, **options)
    elif endpoint:
        from azure.identity.aio import DefaultAzureCredential

        service = TableServiceClient(endpoint, credential=DefaultAzureCredential(), **options)
    else:
        return None
    return TableRoutingStore(service, table, owns_service=True)
