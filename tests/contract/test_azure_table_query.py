"""LazyTable.query (adapters/azure_table.py) against Azurite: the rows, their ETags and errors
as the SDK's own query gives them, every page, and the table created again when it vanished."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EdmType, EntityProperty
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
    real_get = first._lazy.get

    async def counted_get(*args, **kwargs):
        reads.append(args)
        return await real_get(*args, **kwargs)

    first._lazy.get = counted_get
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


# The plain single-row operations (LazyTable.get/insert/replace/upsert/delete): the same rows,
# values, ETags and errors as the SDK's table client gives for the same calls.

ODD_KEYS = [("p", "a"), ("it's", "o'k"), ("sp ace", "per%cent"), ("slash-free", "é ü")]
ROWS = [
    {"x": 1.5, "s": "text", "b": True, "n": 7},
    {"tokens": 12.0, "ts": 1_700_000_000.25, "goal": 0.0, "mode": "lease"},
    {"neg": -3.5, "big": EntityProperty(2**40, EdmType.INT64), "nan": float("nan"),
     "inf": float("inf")},
    {"empty": "", "zero": 0, "false": False, "none": None},
]


def _same(a: dict, b: dict) -> bool:
    """Equal, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        (x != x and y != y) or (x == y and type(x) is type(y)) for x, y in
        ((a[k], b[k]) for k in a))


async def test_plain_rows_values_and_etags_are_the_sdks(service):
    from azure.data.tables._serialize import _add_entity_properties

    from function_app.adapters.azure_table import entity_body, entity_of

    table = LazyTable(service, name())
    client = await table.ready()
    for (partition, row), fields in zip(ODD_KEYS, ROWS, strict=True):
        entity = {"PartitionKey": partition, "RowKey": row, **fields}
        assert entity_body(entity) == _add_entity_properties(entity)
        etag = await table.insert(entity)
        sdk = await client.get_entity(partition, row)
        plain = await table.get(partition, row)
        assert row_etag(plain) == sdk.metadata["etag"] == etag
        unwrapped = {k: getattr(v, "value", v) for k, v in sdk.items()}
        assert _same(entity_of(plain), unwrapped)
        # written by the SDK, read plain: the same values
        await client.upsert_entity(entity)
        assert _same(entity_of(await table.get(partition, row)),
                     {k: getattr(v, "value", v) for k, v in
                      (await client.get_entity(partition, row)).items()})
    assert await table.get("p", "missing") is None


async def test_plain_writes_keep_the_etag_semantics(service):
    table = LazyTable(service, name())
    row = {"PartitionKey": "p", "RowKey": "r", "v": 1.0}
    first = await table.write(row, None)
    with pytest.raises(ResourceExistsError):
        await table.write(row, None)
    second = await table.write({**row, "v": 2.0}, first)
    assert second != first
    with pytest.raises(ResourceModifiedError):
        await table.write({**row, "v": 3.0}, first)  # stale ETag
    with pytest.raises(ResourceModifiedError):
        await table.delete("p", "r", first)
    third = await table.upsert({**row, "v": 4.0})  # whatever its ETag
    assert (await table.get("p", "r"))["v"] == 4.0 and row_etag(await table.get("p", "r")) == third
    await table.delete("p", "r", third)
    assert await table.get("p", "r") is None
    with pytest.raises(ResourceNotFoundError):
        await table.delete("p", "r", third)
    with pytest.raises(ResourceNotFoundError):  # replacing a row that is gone
        await table.replace({**row, "v": 5.0}, third)


async def test_a_missing_table_is_told_apart_from_a_missing_row(service):
    table = LazyTable(service, name())
    await table.ready()
    await service.delete_table(table._name)
    with pytest.raises(ResourceNotFoundError) as found:
        await table.get("p", "r")
    assert found.value.error_code == "TableNotFound" and not table._ready
    assert await table.get("p", "r") is None  # created again


async def test_query_with_a_limit_and_without_a_filter(service):
    table = LazyTable(service, name())
    for k in range(5):
        await table.upsert({"PartitionKey": "p", "RowKey": f"{k}", "ts": float(k)})
    assert [r["RowKey"] for r in await table.query("ts lt 3.0", limit=2)] == ["0", "1"]
    assert len(await table.query(None)) == 5


async def test_upsert_all_is_one_batch_all_or_none(service):
    from azure.core.exceptions import HttpResponseError

    table = LazyTable(service, name())
    client = await table.ready()
    rows = [{"PartitionKey": "p", "RowKey": f"r'{k}", "ok": k % 2 == 0, "at": 1.5 + k,
             "status": 200} for k in range(3)]
    await table.upsert_all(rows)
    await table.upsert_all([{**rows[0], "status": 500}])  # replaces
    got = {e["RowKey"]: dict(e) async for e in client.query_entities("PartitionKey eq 'p'")}
    assert got == {r["RowKey"]: r for r in [{**rows[0], "status": 500}, *rows[1:]]}
    with pytest.raises(ValueError):  # two partitions: not sent
        await table.upsert_all([{"PartitionKey": "p", "RowKey": "new", "v": 1.0},
                                {"PartitionKey": "other", "RowKey": "x", "v": 1.0}])
    with pytest.raises(HttpResponseError):  # the same row twice: refused, nothing written
        await table.upsert_all([{"PartitionKey": "p", "RowKey": "new", "v": 1.0},
                                {"PartitionKey": "p", "RowKey": "new", "v": 2.0}])
    assert await table.get("p", "new") is None
