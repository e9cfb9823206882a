"""One store fixture per interface, parametrised over the memory and the Azurite adapters.

Each Azurite-backed test gets tables of its own (random names), so tests never see each
other's rows; Azurite itself starts once per session, only if an Azurite case runs.
"""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.adapters.limitstore_table import LimitStorage, open_limit_storage
from tests.support.azurite import azurite_fixture
from tests.support.stores import MemoryOverrideStore

azurite = azurite_fixture()


@pytest.fixture(params=["memory", "azurite"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest_asyncio.fixture
async def table_storage(request: pytest.FixtureRequest, backend: str):
    """Both Table stores over fresh, uniquely named tables (None for the memory backend)."""
    if backend != "azurite":
        yield None
        return
    running = request.getfixturevalue("azurite")  # sync, session-scoped: starts once
    suffix = uuid.uuid4().hex[:10]
    storage = open_limit_storage(
        running.connection_string, buckets_table=f"rl{suffix}", overrides_table=f"ov{suffix}"
    )
    assert storage is not None
    yield storage
    await storage.close()


@pytest.fixture
def bucket_store(table_storage: LimitStorage | None):
    return table_storage.buckets if table_storage is not None else MemoryRateLimitStore()


@pytest.fixture
def override_store(table_storage: LimitStorage | None):
    return table_storage.overrides if table_storage is not None else MemoryOverrideStore()




@pytest_asyncio.fixture
async def routing_store(request: pytest.FixtureRequest, backend: str):
    """The routing store (breakers, probes, lease) over memory or a fresh Azurite table."""
    from function_app.adapters.breakerstore_table import open_routing_store
    from tests.support.breakerstore_memory import MemoryRoutingStore

    if backend != "azurite":
        yield MemoryRoutingStore()
        return
    running = request.getfixturevalue("azurite")
    store = open_routing_store(running.connection_string, "", f"rt{uuid.uuid4().hex[:10]}")
    assert store is not None
    yield store
    await store.close()
