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
- LazyTable's plain operations (`query`, `get`, `insert`, `replace`, `upsert`, `delete`,
  `upsert_all`; docs/perf/pass13-store.md) send the Table service's REST requests themselves
  through that same pipeline and read the JSON answers as plain dicts: no generated-code
  request building (the SDK's serializer), no entity objects, no Timestamp parsing, no pager.
  About 930-950 calls an operation instead of 1,520-1,714. The bodies are the SDK's
  (`entity_body`), the values read back are the SDK's (`entity_of`), a row's ETag is
  `row_etag(row)`, the same string the SDK's metadata gives, and errors are the SDK's types;
  tests/contract/test_azure_table_query.py holds them to the SDK's own answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
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
from azure.data.tables._deserialize import _convert_to_entity
from azure.data.tables._serialize import _add_entity_properties
from azure.data.tables.aio import TableClient, TableServiceClient

_ERRORS = {401: ClientAuthenticationError, 403: ClientAuthenticationError,
           404: ResourceNotFoundError, 409: ResourceExistsError, 412: ResourceModifiedError}
_ACCEPT = "application/json;odata=minimalmetadata"
_PART_STATUS = re.compile(r"^HTTP/1\.1 (\d{3})", re.MULTILINE)
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


def entity_body(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body the SDK sends for `entity` (its `_add_entity_properties`): a str with
    its Edm.String annotation, a finite float with Edm.Double, a bool or an Int32-sized int
    bare. Any other value (NaN, a wide int, a datetime, an EntityProperty...) has the SDK's
    own serializer make the whole body."""
    body: dict[str, Any] = {}
    for name, value in entity.items():
        kind = type(value)
        if kind is str:
            body[name] = value
            body[name + "@odata.type"] = "Edm.String"
        elif kind is float and math.isfinite(value):
            body[name] = value
            body[name + "@odata.type"] = "Edm.Double"
        elif kind is bool or (kind is int and -2**31 <= value < 2**31):
            body[name] = value
        else:
            return _add_entity_properties(entity)
    return body


_BARE = (None, "Edm.String", "Edm.Int32")


def entity_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the SDK's entity for the service's JSON `row` holds (`_convert_to_entity`, each
    EntityProperty unwrapped to its value): PartitionKey, RowKey and the properties, without
    Timestamp and the odata annotations. Untyped, String, Int32, Double and Int64 properties
    are read here; a row with any other type goes through the SDK's own reader."""
    entity: dict[str, Any] = {}
    for name, value in row.items():
        if name.startswith("odata.") or name.endswith("@odata.type") or name == "Timestamp":
            continue
        kind = row.get(name + "@odata.type")
        if kind in _BARE:
            entity[name] = value
        elif kind == "Edm.Double":
            entity[name] = float(value)
        elif kind == "Edm.Int64":
            entity[name] = int(value)
        else:
            return {k: getattr(v, "value", v) for k, v in _convert_to_entity(row).items()}
    return entity


def _json(response: Any) -> Any:
    """The JSON body of a response read whole."""
    return json.loads(response.content)


class LazyTable:
    """`await ready()` gives the table's client, creating the table once per process (again
    after `forget()`, when a call found it gone); concurrent first calls create it once.

    Besides the SDK client, the plain operations below send the Table service's REST requests
    themselves through the client's own pipeline (authentication, retry policy, transport) and
    read the JSON answers as dicts: `query`, `get`, `insert`, `replace`, `upsert`, `delete`.
    Their errors are the SDK's types, with `error_code` from the service's x-ms-error-code."""

    def __init__(self, service: TableServiceClient, name: str) -> None:
        self._service, self._name = service, name
        lean_service(service)
        self.client: TableClient = service.get_table_client(name)
        self._ready = False
        self._lock = asyncio.Lock()
        self._table_url, self._version = "", ""

    async def ready(self) -> TableClient:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await self._service.create_table_if_not_exists(self._name)
                    self._ready = True
        return self.client

    def forget(self) -> None:
        self._ready = False  # the table vanished: create it again on the next call

    async def _pipeline(self) -> Any:
        """The table client's pipeline client (the table created first)."""
        client = await self.ready()
        if not self._table_url:
            self._table_url = client._client._client.format_url(
                f"/{self._name}", url=client._client._config.url)
            self._version = client.api_version
        return client._client._client

    async def _send(self, pipeline_client: Any, method: str, url: str, headers: dict[str, str],
                    params: dict[str, str] | None = None, body: dict[str, Any] | None = None,
                    content: bytes | None = None) -> Any:
        """One request through the table client's pipeline (`_pipeline()`, which also sets
        `_table_url`, from which `url` is made), with a JSON `body` or raw `content`."""
        headers["x-ms-version"] = self._version
        headers["DataServiceVersion"] = "3.0"
        # Asked as a stream and then read whole: the pipeline's ContentDecodePolicy then leaves
        # the body alone (a multipart answer included), and `_json` parses it once (as bytes:
        # the service's UTF-8).
        response = await pipeline_client.send_request(
            HttpRequest(method, url, headers=headers, params=params, json=body, content=content),
            stream=True)
        await response.read()
        return response

    def _error(self, response: Any) -> HttpResponseError:
        """The SDK's error type for a failed answer (ResourceNotFoundError, ResourceExistsError,
        ResourceModifiedError, ClientAuthenticationError, else HttpResponseError), with the
        service's error code; a missing table is forgotten (created again on the next call)."""
        code = response.headers.get("x-ms-error-code")
        if code == "TableNotFound":
            self.forget()
        error = _ERRORS.get(response.status_code, HttpResponseError)(response=response)
        error.error_code = code
        return error

    def _row_url(self, partition: str, row: str) -> str:
        return "{}(PartitionKey='{}',RowKey='{}')".format(
            self._table_url, quote(partition.replace("'", "''"), safe=""),
            quote(row.replace("'", "''"), safe=""))

    async def query(self, query_filter: str | None, limit: int | None = None
                    ) -> list[dict[str, Any]]:
        """Every row matching the OData `query_filter` (every row for None), all pages (at most
        `limit` rows, asked `limit` a page), as the service's JSON objects. Errors as the SDK's:
        ResourceNotFoundError (a missing table: `forget()` is called),
        ClientAuthenticationError, HttpResponseError, or the transport's."""
        base: dict[str, str] = {} if query_filter is None else {"$filter": query_filter}
        if limit is not None:
            base["$top"] = str(min(max(1, limit), 1000))
        params = base
        rows: list[dict[str, Any]] = []
        while True:
            pipeline_client = await self._pipeline()
            response = await self._send(pipeline_client, "GET", self._table_url + "()",
                                        {"Accept": _ACCEPT}, params=params)
            if response.status_code != 200:
                if response.status_code == 404:
                    self.forget()
                raise self._error(response)
            body = _json(response)
            page = body.get("value") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise ValueError("a Query Entities answer without its rows")
            rows.extend(page)
            if limit is not None and len(rows) >= limit:
                return rows[:limit]
            got = response.headers
            following = {param: got[header] for param, header in
                         (("NextPartitionKey", _NEXT[0]), ("NextRowKey", _NEXT[1]))
                         if got.get(header)}
            if not following:
                return rows
            params = {**base, **following}

    async def get(self, partition: str, row: str) -> dict[str, Any] | None:
        """The row as the service's JSON object, or None when it does not exist (a missing
        table raises ResourceNotFoundError with error_code "TableNotFound")."""
        pipeline_client = await self._pipeline()
        response = await self._send(pipeline_client, "GET", self._row_url(partition, row),
                                    {"Accept": _ACCEPT})
        if response.status_code == 200:
            return _json(response)
        if response.status_code == 404 and \
                response.headers.get("x-ms-error-code") != "TableNotFound":
            return None
        raise self._error(response)

    async def insert(self, entity: Mapping[str, Any]) -> str:
        """Create the row (ResourceExistsError if it exists); its ETag."""
        pipeline_client = await self._pipeline()
        response = await self._send(pipeline_client, "POST", self._table_url,
                                    {"Accept": _ACCEPT, "Prefer": "return-no-content"},
                                    body=entity_body(entity))
        return self._etag(response, (201, 204))

    async def replace(self, entity: Mapping[str, Any], etag: str) -> str:
        """Replace the row only if its ETag is still `etag` (ResourceModifiedError if not,
        ResourceNotFoundError if it is gone); the new ETag."""
        return await self._put(entity, {"If-Match": etag})

    async def upsert(self, entity: Mapping[str, Any]) -> str:
        """Create or replace the row whatever its ETag; the new ETag."""
        return await self._put(entity, {})

    async def _put(self, entity: Mapping[str, Any], headers: dict[str, str]) -> str:
        pipeline_client = await self._pipeline()
        headers["Accept"] = "application/json"
        url = self._row_url(entity["PartitionKey"], entity["RowKey"])
        response = await self._send(pipeline_client, "PUT", url, headers,
                                    body=entity_body(entity))
        return self._etag(response, (204,))

    async def delete(self, partition: str, row: str, etag: str = "*") -> None:
        """Delete the row if its ETag matches (ResourceModifiedError if not,
        ResourceNotFoundError if it is gone)."""
        pipeline_client = await self._pipeline()
        response = await self._send(pipeline_client, "DELETE", self._row_url(partition, row),
                                    {"Accept": _ACCEPT, "If-Match": etag})
        if response.status_code != 204:
            raise self._error(response)

    async def upsert_all(self, entities: list[Mapping[str, Any]]) -> None:
        """`upsert` of every entity in one entity group transaction (one $batch request; the
        entities share a PartitionKey, at most 100): all written, or none and an error."""
        if len({e["PartitionKey"] for e in entities}) != 1 or len(entities) > 100:
            raise ValueError("one batch is 1 to 100 rows of one partition")
        pipeline_client = await self._pipeline()
        batch, change = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
        parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={change}\r\n\r\n"]
        for entity in entities:
            body = json.dumps(entity_body(entity)).encode()
            url = self._row_url(entity["PartitionKey"], entity["RowKey"])
            parts.append(
                f"--{change}\r\nContent-Type: application/http\r\n"
                f"Content-Transfer-Encoding: binary\r\n\r\nPUT {url} HTTP/1.1\r\n"
                f"Content-Type: application/json\r\nAccept: application/json\r\n"
                f"DataServiceVersion: 3.0\r\nContent-Length: {len(body)}\r\n\r\n"
                f"{body.decode()}\r\n")
        parts.append(f"--{change}--\r\n--{batch}--\r\n")
        headers = {"MaxDataServiceVersion": "3.0;NetFx", "Accept": "application/json",
                   "Content-Type": f"multipart/mixed; boundary={batch}"}
        response = await self._send(pipeline_client, "POST",
                                    self._table_url.rsplit("/", 1)[0] + "/$batch", headers,
                                    content="".join(parts).encode())
        if response.status_code != 202:
            raise self._error(response)
        statuses = _PART_STATUS.findall(response.text())
        if len(statuses) != len(entities) or any(not s.startswith("2") for s in statuses):
            raise HttpResponseError(f"the batch was not applied: parts answered {statuses}",
                                    response=response)

    async def write(self, entity: Mapping[str, Any], etag: str | None) -> str:
        """Create the row (`etag` None) or replace it only if unchanged since it was read;
        the new ETag (as `write_row`, over the plain path)."""
        if etag is None:
            return await self.insert(entity)
        return await self.replace(entity, etag)

    def _etag(self, response: Any, ok: tuple[int, ...]) -> str:
        if response.status_code not in ok:
            raise self._error(response)
        return str(response.headers["ETag"])


async def write_row(client: TableClient, row: dict[str, Any], etag: str | None) -> Any:
    """Create the row (`etag` None) or replace it only if unchanged since it was read; the
    answer's metadata (its "etag")."""
    if etag is None:
        return await client.create_entity(row)
    return await client.update_entity(row, mode=UpdateMode.REPLACE, etag=etag,
                                      match_condition=MatchConditions.IfNotModified)
