"""What the Table Storage adapters share: a table created the first time a call needs it (Table
Storage has no schema step), the ETag-guarded write of one row, and the cheap read of the rows a
timer re-reads every fraction of a second. Errors stay the SDK's: each store translates them
into its own port's error types.

Cost (docs/perf/pass12-store.md). An SDK operation is ~1,650 Python calls and ~1.4 ms of CPU
on this machine, all of it synchronous: it holds the event loop while requests wait. Two cuts,
both keeping the SDK's client, its pipeline's authentication (shared key, SAS or managed
identity), its retry policy and its aiohttp transport:

- The table client's pipeline leaves out the policies that do nothing for the gateway, decided
  once when the client is made: the proxy policy when no proxy is configured (the transport
  reads the environment's), the custom-hook and network-trace policies (the gateway passes no
  hook and no `logging_enable`), the tracing policy while azure-core tracing is off (the
  telemetry wiring keeps the distro's azure_sdk instrumentation off), and the HTTP logging
  policy while its logger would drop the record (STORAGE_SDK_LOG_LEVEL above INFO; at INFO it
  stays and logs every call as before). ~150 calls per operation.
- `LazyTable.query` sends the Query Entities request itself through that same pipeline and
  reads the JSON answer as plain dicts: no generated-code request building (the SDK's
  serializer), no entity objects, no Timestamp parsing, no pager (~630 calls fewer for two
  rows). The rows are the service's
  own JSON objects; their ETag is `row_etag(row)`, the same string the SDK's metadata gives.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.pipeline.policies import (
    CustomHookPolicy,
    DistributedTracingPolicy,
    HttpLoggingPolicy,
    NetworkTraceLoggingPolicy,
    ProxyPolicy,
)
from azure.core.rest import HttpRequest
from azure.core.settings import settings as azure_settings
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

_ERRORS = {401: ClientAuthenticationError, 403: ClientAuthenticationError,
           404: ResourceNotFoundError, 409: ResourceExistsError, 412: ResourceModifiedError}
_NEXT = ("x-ms-continuation-NextPartitionKey", "x-ms-continuation-NextRowKey")


def idle_policy(policy: Any) -> bool:
    """Whether `policy`, as configured now, would do nothing on any call the gateway makes."""
    if isinstance(policy, ProxyPolicy):
        return not policy.proxies
    if isinstance(policy, CustomHookPolicy):
        return policy._request_callback is None and policy._response_callback is None
    if isinstance(policy, NetworkTraceLoggingPolicy):
        return not policy.enable_http_logger
    if isinstance(policy, DistributedTracingPolicy):
        return not azure_settings.tracing_enabled() and \
            azure_settings.tracing_implementation() is None
    if isinstance(policy, HttpLoggingPolicy):
        logger = policy.logger
        return isinstance(logger, logging.Logger) and \
            not logger.isEnabledFor(policy.http_logging_level)
    return False


def lean_service(service: TableServiceClient) -> None:
    """Leave the idle policies out of every pipeline `service` builds from now on (each table
    client's). Done on the service's own list, in place: the policies that are not SansIO
    (redirect, retry, a token credential's) are single objects chained anew by each pipeline
    built from that list, so every pipeline must be built from the same list or the last one
    built decides the chain of all. Idempotent."""
    service._policies[:] = [p for p in service._policies if not idle_policy(p)]


def eq(name: str, value: str) -> str:
    """An OData filter `name eq 'value'` (quotes in the value doubled)."""
    return "{} eq '{}'".format(name, value.replace("'", "''"))


def row_etag(row: dict[str, Any]) -> str:
    """A row's ETag as `query` returns it (the SDK's `entity.metadata["etag"]`)."""
    return str(row["odata.etag"])


class LazyTable:
    """`await ready()` gives the table's client, creating the table once per process (again
    after `forget()`, when a call found it gone); concurrent first calls create it once."""

    def __init__(self, service: TableServiceClient, name: str) -> None:
        self._service, self._name = service, name
        lean_service(service)
        self.client: TableClient = service.get_table_client(name)
        self._ready = False
        self._lock = asyncio.Lock()
        self._query_url = ""

    async def ready(self) -> TableClient:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await self._service.create_table_if_not_exists(self._name)
                    self._ready = True
        return self.client

    def forget(self) -> None:
        self._ready = False  # the table vanished: create it again on the next call

    async def query(self, query_filter: str) -> list[dict[str, Any]]:
        """Every row matching the OData `query_filter` (all pages), as the service's JSON
        objects. Errors as the SDK's: ResourceNotFoundError (a missing table: `forget()` is
        called), ClientAuthenticationError, HttpResponseError, or the transport's."""
        client = await self.ready()
        pipeline_client = client._client._client
        if not self._query_url:
            self._query_url = pipeline_client.format_url(
                f"/{self._name}()", url=client._client._config.url)
        headers = {"Accept": "application/json;odata=minimalmetadata",
                   "DataServiceVersion": "3.0", "x-ms-version": client.api_version}
        params = {"$filter": query_filter}
        rows: list[dict[str, Any]] = []
        while True:
            response = await pipeline_client.send_request(
                HttpRequest("GET", self._query_url, headers=dict(headers), params=params))
            if response.status_code != 200:
                if response.status_code == 404:
                    self.forget()
                map_error(response.status_code, response, _ERRORS)
                raise HttpResponseError(response=response)
            body = response.json()
            page = body.get("value") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise ValueError("a Query Entities answer without its rows")
            rows.extend(page)
            got = response.headers
            following = {param: got[header] for param, header in
                         (("NextPartitionKey", _NEXT[0]), ("NextRowKey", _NEXT[1]))
                         if got.get(header)}
            if not following:
                return rows
            params = {"$filter": query_filter, **following}


async def write_row(client: TableClient, row: dict[str, Any], etag: str | None) -> Any:
    """Create the row (`etag` None) or replace it only if unchanged since it was read; the
    answer's metadata (its "etag")."""
    if etag is None:
        return await client.create_entity(row)
    return await client.update_entity(row, mode=UpdateMode.REPLACE, etag=etag,
                                      match_condition=MatchConditions.IfNotModified)
