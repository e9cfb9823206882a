"""The RateLimitStore and OverrideStore contracts, run against memory and Azurite alike."""

from __future__ import annotations

import pytest

from function_app.core.store_errors import StoreConflict
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keys import bucket_partition, shard_row
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import Override, RowKey
from tests.support.clock import FakeClock

KEY = RowKey(bucket_partition("client", "team/a?#%'\"~ é"), shard_row(0))
FIELDS = {"tokens": 12.5, "ts": 1_700_000_000.25, "holders": '{"i.1":1700000001.5}'}


@pytest.mark.asyncio
async def test_read_of_a_missing_row_is_none(bucket_store):
    assert await bucket_store.read(KEY) is None


@pytest.mark.asyncio
async def test_create_then_read_round_trips_fields_and_etag(bucket_store):
    etag = await bucket_store.write(KEY, FIELDS, None)
    stored = await bucket_store.read(KEY)
    assert stored is not None and stored.etag == etag and stored.key == KEY
    assert {name: stored.fields[name] for name in FIELDS} == FIELDS
    assert isinstance(stored.fields["tokens"], float)


@pytest.mark.asyncio
async def test_create_of_an_existing_row_conflicts(bucket_store):
    await bucket_store.write(KEY, FIELDS, None)
    with pytest.raises(StoreConflict):
        await bucket_store.write(KEY, FIELDS, None)


@pytest.mark.asyncio
async def test_replace_with_current_etag_succeeds_and_changes_the_etag(bucket_store):
    first = await bucket_store.write(KEY, FIELDS, None)
    second = await bucket_store.write(KEY, {**FIELDS, "tokens": 3.0}, first)
    assert second != first
    stored = await bucket_store.read(KEY)
    assert stored is not None and stored.fields["tokens"] == 3.0 and stored.etag == second


@pytest.mark.asyncio
async def test_replace_with_a_stale_etag_conflicts(bucket_store):
    first = await bucket_store.write(KEY, FIELDS, None)
    await bucket_store.write(KEY, {**FIELDS, "tokens": 1.0}, first)
    with pytest.raises(StoreConflict):
        await bucket_store.write(KEY, {**FIELDS, "tokens": 2.0}, first)
    stored = await bucket_store.read(KEY)
    assert stored is not None and stored.fields["tokens"] == 1.0


@pytest.mark.asyncio
async def test_replace_of_a_vanished_row_conflicts(bucket_store):
    etag = await bucket_store.write(KEY, FIELDS, None)
    await bucket_store.delete(KEY, etag)
    with pytest.raises(StoreConflict):
        await bucket_store.write(KEY, FIELDS, etag)


@pytest.mark.asyncio
async def test_delete_is_conditional_and_a_missing_row_is_fine(bucket_store):
    first = await bucket_store.write(KEY, FIELDS, None)
    second = await bucket_store.write(KEY, FIELDS, first)
    with pytest.raises(StoreConflict):
        await bucket_store.delete(KEY, first)
    await bucket_store.delete(KEY, second)
    assert await bucket_store.read(KEY) is None
    await bucket_store.delete(KEY, second)


@pytest.mark.asyncio
async def test_scan_returns_rows_older_than_the_cutoff_only(bucket_store):
    old, new = RowKey("p-old", "s0"), RowKey("p-new", "s0")
    await bucket_store.write(old, {**FIELDS, "ts": 100.0}, None)
    await bucket_store.write(new, {**FIELDS, "ts": 200.0}, None)
    found = await bucket_store.scan(150.0, 10)
    assert [row.key for row in found] == [old]
    assert found[0].etag == (await bucket_store.read(old)).etag
    assert len(await bucket_store.scan(1e10, 1)) == 1


@pytest.mark.asyncio
async def test_put_creates_or_replaces_whatever_the_etag(bucket_store):
    first = await bucket_store.put(KEY, FIELDS)
    second = await bucket_store.put(KEY, {"d": "x" * 30_000, "p": 3.0})
    stored = await bucket_store.read(KEY)
    assert first != second and stored is not None and stored.etag == second
    assert stored.fields["d"] == "x" * 30_000 and stored.fields["p"] == 3.0
    assert "tokens" not in stored.fields  # replaced, not merged
    with pytest.raises(StoreConflict):
        await bucket_store.write(KEY, FIELDS, first)


@pytest.mark.asyncio
async def test_query_returns_every_row_of_one_partition_only(bucket_store):
    for n in range(3):
        await bucket_store.put(RowKey("_tally.g0", f"i{n}"), {"p": float(n)})
    await bucket_store.put(RowKey("_tally.g1", "i9"), {"p": 9.0})
    found = await bucket_store.query("_tally.g0")
    assert sorted((row.key.row, row.fields["p"]) for row in found) == [
        ("i0", 0.0), ("i1", 1.0), ("i2", 2.0)]
    assert all(row.etag for row in found)
    assert await bucket_store.query("_tally.g7") == []


@pytest.mark.asyncio
async def test_a_lease_row_round_trips_through_the_store(bucket_store):
    row = lease.Row(7.25, 1_700_000_000.5, 200.0, 400.0, {"gw.abc": 1_700_000_002.0})
    await bucket_store.write(KEY, lease.row_to_fields(row), None)
    stored = await bucket_store.read(KEY)
    assert stored is not None and lease.row_from_fields(stored.fields) == row


@pytest.mark.asyncio
async def test_overrides_put_read_and_remove(override_store):
    route = Override("route", "/infer/python", Limit(5.0, 10.0, True))
    client = Override("client", "team a/b", Limit(50.0, 100.0))
    await override_store.put(route)
    await override_store.put(client)
    await override_store.put(Override("client", "team a/b", Limit(60.0, 120.0)))
    found = {(item.kind, item.key): item for item in await override_store.read_all()}
    assert found[("route", "/infer/python")] == route
    assert found[("client", "team a/b")].limit == Limit(60.0, 120.0)
    await override_store.remove("route", "/infer/python")
    await override_store.remove("route", "/never/there")
    assert [item.key for item in await override_store.read_all()] == ["team a/b"]


@pytest.mark.asyncio
async def test_limiter_admits_burst_then_denies_on_each_store(bucket_store):
    clock = FakeClock()
    limiter = Limiter(bucket_store, clock, LimiterConfig(storage_timeout_s=5), "c",
                      background=False)
    scoped = [ScopedLimit("client", "team/x", Limit(10.0, 20.0))]
    decisions = [await limiter.acquire(scoped) for _ in range(25)]
    assert sum(d.allowed for d in decisions) == 20
    assert not decisions[-1].allowed and decisions[-1].retry_after_s > 0
    await limiter.close()
    stored = await bucket_store.read(RowKey(bucket_partition("client", "team/x"), "s0"))
    assert stored is not None and lease.row_from_fields(stored.fields).holders == {}
