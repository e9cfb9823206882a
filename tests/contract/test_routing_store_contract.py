"""The BreakerStore and ProbeStore contract, run against memory and Azurite alike."""

from __future__ import annotations

import pytest

from function_app.core.store_errors import StoreConflict
from function_app.routing.breaker import CLOSED, HELD, OPEN, SharedState
from function_app.routing.store import ProbeResult

NAME = "http://gpu-1:8000/v1 é"  # backends may be named by URL: any characters


@pytest.mark.asyncio
async def test_no_rows_at_first(routing_store):
    assert await routing_store.read_breakers() == []
    assert await routing_store.read_probes() == []


@pytest.mark.asyncio
async def test_a_breaker_row_is_created_read_and_replaced_with_its_etag(routing_store):
    opened = SharedState(OPEN, 1_700_000_000.25, 1_700_000_002.25)
    etag = await routing_store.write_breaker(NAME, opened, None)
    [row] = await routing_store.read_breakers()
    assert (row.backend, row.state, row.etag) == (NAME, opened, etag)
    closed = SharedState(CLOSED, 1_700_000_003.0)
    second = await routing_store.write_breaker(NAME, closed, etag)
    assert second != etag
    [row] = await routing_store.read_breakers()
    assert row.state == closed and row.etag == second


@pytest.mark.asyncio
async def test_stale_etags_and_double_creates_conflict(routing_store):
    first = await routing_store.write_breaker("node", SharedState(OPEN, 1.0, 3.0), None)
    with pytest.raises(StoreConflict):
        await routing_store.write_breaker("node", SharedState(OPEN, 2.0, 4.0), None)
    await routing_store.write_breaker("node", SharedState(CLOSED, 5.0), first)
    with pytest.raises(StoreConflict):
        await routing_store.write_breaker("node", SharedState(OPEN, 6.0, 8.0), first)
    [row] = await routing_store.read_breakers()
    assert row.state == SharedState(CLOSED, 5.0)


@pytest.mark.asyncio
async def test_probes_are_upserted_one_row_per_backend(routing_store):
    await routing_store.record_probe(ProbeResult(NAME, False, 10.0, 500.0, 0))
    await routing_store.record_probe(ProbeResult("node", True, 10.5, 2.5, 200))
    await routing_store.record_probe(ProbeResult(NAME, True, 20.0, 3.5, 200))
    found = {p.backend: p for p in await routing_store.read_probes()}
    assert found == {NAME: ProbeResult(NAME, True, 20.0, 3.5, 200),
                     "node": ProbeResult("node", True, 10.5, 2.5, 200)}


@pytest.mark.asyncio
async def test_probes_recorded_in_one_call_are_the_same_rows(routing_store):
    await routing_store.record_probe(ProbeResult("node", False, 1.0, 500.0, 0))
    batch = [ProbeResult(NAME, True, 20.0, 3.5, 200), ProbeResult("node", True, 20.25, 2.0, 204),
             ProbeResult("it's", False, 20.5, 500.0, 0)]
    await routing_store.record_probes(batch)
    assert {p.backend: p for p in await routing_store.read_probes()} == {
        p.backend: p for p in batch}
    _, probes = await routing_store.read_both()
    assert sorted(probes, key=lambda p: p.backend) == sorted(batch, key=lambda p: p.backend)


@pytest.mark.asyncio
async def test_the_lease_has_one_holder_until_it_lapses(routing_store):
    assert await routing_store.take_lease("health", "gw-a", 10.0, 100.0)
    assert not await routing_store.take_lease("health", "gw-b", 10.0, 105.0)
    assert await routing_store.take_lease("health", "gw-a", 10.0, 105.0)  # renewed
    assert not await routing_store.take_lease("health", "gw-b", 10.0, 114.0)
    assert await routing_store.take_lease("health", "gw-b", 10.0, 115.5)
    assert not await routing_store.take_lease("health", "gw-a", 10.0, 116.0)
    assert await routing_store.take_lease("other", "gw-a", 10.0, 116.0)  # leases are by name


@pytest.mark.asyncio
async def test_a_hold_for_a_429_keeps_its_cause(routing_store):
    held = SharedState(OPEN, 1_700_000_000.0, 1_700_000_004.5, HELD)
    await routing_store.write_breaker("ptu", held, None)
    [row] = await routing_store.read_breakers()
    assert row.state == held and row.state.cause == "429"


@pytest.mark.asyncio
async def test_read_both_is_the_breakers_and_the_probes_in_one_call(routing_store):
    assert await routing_store.read_both() == ([], [])
    await routing_store.write_breaker(NAME, SharedState(OPEN, 1.5, 3.5, "5xx"), None)
    await routing_store.record_probe(ProbeResult("node", False, 10.0, 2.5, 503))
    assert await routing_store.take_lease("health", "gw-a", 10.0, 100.0)  # not a breaker row
    breakers, probes = await routing_store.read_both()
    assert breakers == await routing_store.read_breakers()
    assert probes == await routing_store.read_probes()
    assert [b.backend for b in breakers] == [NAME] and [p.backend for p in probes] == ["node"]
