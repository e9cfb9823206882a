"""LazyTable.query (adapters/azure_table.py) against Azurite: the rows, their ETags and errors
as the SDK's own query gives them, every page, and the table created again when it vanished."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables.aio import TableServiceClient

from function_app.adapters.azure_table import LazyTable, eq, row_etag, write_row
from tests.support.azurite import azurite_fixture

azurite = azurite_fixture()


@pytest.fixture
async def service(azurite):
    client = TableServiceClient.from_connection_string(azurite.connection_string,
                                                       retry_total=0)
    yield client
    await client.close()


def name() -> str:
    return f"q{uuid.uuid4().hex[:10]}"


async def test_rows_and_etags_are_the_sdks(service):
    table = LazyTable(service, name())
    client = await table.ready()
    await client.create_entity({"PartitionKey": "p", "RowKey": "a", "x": 1.5, "s": "it's",
                                "b": True, "n": 7})
    await client.create_entity({"PartitionKey": "p'q", "RowKey": "b", "x": 2.0})
    await client.create_entity({"PartitionKey": "other", "RowKey": "c"})
    for partition in ("p", "p'q"):
        rows = await table.query(eq("PartitionKey", partition))
        sdk = [e async for e in client.query_entities(
            "PartitionKey eq @p", parameters={"p": partition})]
        assert [row_etag(r) for r in rows] == [e.metadata["etag"] for e in sdk]
        assert [{k: v for k, v in r.items() if "odata" not in k and k != "Timestamp"}
                for r in rows] == [dict(e) for e in sdk]
    [row] = await table.query(eq("PartitionKey", "p"))
    assert (row["x"], row["s"], row["b"], row["n"]) == (1.5, "it's", True, 7)
    # The ETag a query gives guards a write as the SDK's does.
    await write_row(client, {"PartitionKey": "p", "RowKey": "a", "x": 3.0}, row_etag(row))
    with pytest.raises(ResourceModifiedError):
        await write_row(client, {"PartitionKey": "p", "RowKey": "a", "x": 4.0}, row_etag(row))
    assert await table.query(eq("PartitionKey", "none")) == []


async def test_every_page_is_read(service):
    table = LazyTable(service, name())
    client = await table.ready()
    for start in range(0, 1005, 100):  # the service answers at most 1,000 rows a page
        await client.submit_transaction(
            [("upsert", {"PartitionKey": "p", "RowKey": f"{k:05d}"})
             for k in range(start, min(start + 100, 1005))])
    rows = await table.query(eq("PartitionKey", "p"))
    assert [r["RowKey"] for r in rows] == [f"{k:05d}" for k in range(1005)]


async def test_a_vanished_table_is_an_sdk_error_and_created_again(service):
    table = LazyTable(service, name())
    await table.ready()
    await service.delete_table(table._name)
    with pytest.raises(ResourceNotFoundError):
        await table.query(eq("PartitionKey", "p"))
    assert await table.query(eq("PartitionKey", "p")) == []  # ready() made it again


async def test_the_lease_holder_renews_without_reading_it_and_loses_it_to_a_later_taker(
        azurite):
    from function_app.adapters.breakerstore_table import open_routing_store

    table = name()
    first = open_routing_store(azurite.connection_string, "", table)
    second = open_routing_store(azurite.connection_string, "", table)
    reads = []
    client = first._lazy.client
    real_get = client.get_entity

    async def counted_get(*args, **kwargs):
        reads.append(args)
        return await real_get(*args, **kwargs)

    client.get_entity = counted_get
    try:
        assert await first.take_lease("health", "gw-a", 10.0, 100.0)
        assert len(reads) == 1  # not held yet: read first
        assert await first.take_lease("health", "gw-a", 10.0, 105.0)
        assert len(reads) == 1  # renewed with its own last ETag
        assert not await second.take_lease("health", "gw-b", 10.0, 114.0)  # renewed to 115
        assert await second.take_lease("health", "gw-b", 10.0, 115.5)
        assert not await first.take_lease("health", "gw-a", 10.0, 116.0)  # ETag stale: read
        assert len(reads) == 2
        assert not await first.take_lease("health", "gw-a", 10.0, 117.0)
        assert await first.take_lease("health", "gw-a", 10.0, 126.0)  # gw-b's lapsed
    finally:
        await first.close()
        await second.close()
