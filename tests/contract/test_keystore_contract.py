"""The KeyStore contract, run against memory and Azurite alike; and the admin CLI on Azurite."""

from __future__ import annotations

import asyncio
import io
import uuid

import pytest
import pytest_asyncio

from function_app.adapters.keystore_memory import MemoryKeyStore
from function_app.adapters.keystore_table import open_key_store
from function_app.admin.cli import main as admin
from function_app.tenants.keys import generate, key_hash, prefix_of
from function_app.tenants.records import KeyRecord, TenantRecord, UsageRecord
from function_app.tenants.store import KeyExists

NOW = 1_795_000_000.0


@pytest_asyncio.fixture
async def key_store(request: pytest.FixtureRequest, backend: str):
    if backend == "memory":
        yield MemoryKeyStore()
        return
    running = request.getfixturevalue("azurite")
    store = open_key_store(running.connection_string, table=f"keys{uuid.uuid4().hex[:10]}")
    yield store
    await store.close()


def record(tenant: str = "acme", **changes) -> KeyRecord:
    key = generate()
    return KeyRecord(key_hash(key), prefix_of(key), tenant, "ci", NOW).with_(**changes)


@pytest.mark.asyncio
async def test_unknown_hash_reads_as_none(key_store):
    assert await key_store.get_key(key_hash(generate())) is None
    assert await key_store.get_tenant("nobody") is None


@pytest.mark.asyncio
async def test_created_key_reads_back_by_its_hash_with_every_field(key_store):
    stored = record(models=("sim-*",), routes=("/v1/*",), rps=2.5, burst=5, tpm=600,
                    daily_tokens=1000, monthly_tokens=20000, expires=NOW + 60)
    await key_store.create_key(stored)
    assert await key_store.get_key(stored.key_hash) == stored
    with pytest.raises(KeyExists):
        await key_store.create_key(stored)


@pytest.mark.asyncio
async def test_save_replaces_and_list_returns_every_key(key_store):
    first, second = record(), record("beta")
    await key_store.create_key(first)
    await key_store.create_key(second)
    await key_store.save_key(first.with_(revoked=True, revoked_at=NOW + 1))
    assert (await key_store.get_key(first.key_hash)).revoked
    assert {r.prefix for r in await key_store.list_keys()} == {first.prefix, second.prefix}


@pytest.mark.asyncio
async def test_tenants_save_and_list(key_store):
    await key_store.save_tenant(TenantRecord("acme", NOW, 100, 1000))
    await key_store.save_tenant(TenantRecord("acme", NOW, 200, 1000))
    await key_store.save_tenant(TenantRecord("beta", NOW))
    assert await key_store.get_tenant("acme") == TenantRecord("acme", NOW, 200, 1000)
    assert [t.name for t in await key_store.list_tenants()] == ["acme", "beta"]


@pytest.mark.asyncio
async def test_the_largest_budgets_the_cli_accepts_are_stored(key_store):
    """Token budgets go up to 10^15 (admin/arguments.py); the Table SDK sent every int as Int32
    and refused 2^31 and above with a TypeError, a traceback from `tenants set` (found by the
    fuzzer's keys: tests/e2e/conftest_fuzz.py)."""
    tenant = TenantRecord("big", NOW, 10**15, 2**31)
    await key_store.save_tenant(tenant)
    assert await key_store.get_tenant("big") == tenant
    stored = record(daily_tokens=10**15, monthly_tokens=2**40)
    await key_store.create_key(stored)
    assert await key_store.get_key(stored.key_hash) == stored
    big = UsageRecord("big", "abcd2345", "2026-11-29", 1, 2**33, 0.0, NOW)
    await key_store.add_usage(big)
    await key_store.add_usage(big)
    assert (await key_store.list_usage("big"))[0].tokens == 2**34


@pytest.mark.asyncio
async def test_usage_deltas_add_up_even_when_written_concurrently(key_store):
    deltas = [UsageRecord("acme", "abcd2345", "2026-11-29", 1, 10, 0.5, NOW + i)
              for i in range(6)]
    await asyncio.gather(*(key_store.add_usage(d) for d in deltas))
    await key_store.add_usage(UsageRecord("acme", "abcd2345", "2026-11-28", 1, 1, 0, NOW))
    await key_store.add_usage(UsageRecord("beta", "bbbb2345", "2026-11-29", 2, 5, 0, NOW))
    rows = await key_store.list_usage("acme", since_day="2026-11-29")
    assert rows == [UsageRecord("acme", "abcd2345", "2026-11-29", 6, 60, 3.0, NOW + 5)]
    assert len(await key_store.list_usage(None, since_day="2026-11-28")) == 3


@pytest.mark.asyncio
async def test_admin_cli_creates_lists_rotates_and_revokes(key_store, backend):
    if backend != "azurite":
        pytest.skip("the CLI is exercised against the real table")

    async def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = await admin(list(argv), {}, out, store=_Unclosed(key_store), now=lambda: NOW)
        return code, out.getvalue()

    code, text = await run("keys", "create", "--tenant", "acme", "--name", "ci",
                           "--models", "sim-python", "--daily-tokens", "5000", "--rps", "3")
    key = text.splitlines()[-1]
    assert code == 0 and prefix_of(key) is not None
    stored = await key_store.get_key(key_hash(key))
    assert stored.models == ("sim-python",) and stored.daily_tokens == 5000
    assert key not in str(await key_store.list_keys())  # only its hash is stored
    await key_store.add_usage(UsageRecord("acme", stored.prefix, "2026-11-18", 3, 42, 0.25,
                                          NOW - 10))
    code, listing = await run("keys", "list")
    assert stored.prefix in listing and "42" in listing and key not in listing
    code, text = await run("keys", "rotate", stored.prefix)
    new_key = text.splitlines()[-1]
    assert code == 0 and (await key_store.get_key(key_hash(key))).revoked
    assert (await key_store.get_key(key_hash(new_key))).daily_tokens == 5000
    code, _ = await run("keys", "revoke", new_key)
    assert code == 0 and (await key_store.get_key(key_hash(new_key))).revoked
    code, text = await run("tenants", "set", "acme", "--daily-tokens", "9000",
                           "--daily-spend", "7.25")
    assert code == 0 and (await key_store.get_tenant("acme")).daily_spend == 7.25
    code, text = await run("tenants", "list")
    assert "acme" in text and "9000" in text and "7.25" in text
    code, text = await run("tenants", "usage", "acme", "--days", "40")
    assert "42" in text and stored.prefix in text and "0.2500" in text  # the cost per key
    code, _ = await run("keys", "update", new_key, "--monthly-spend", "40")
    assert (await key_store.get_key(key_hash(new_key))).monthly_spend == 40.0
    assert (await run("keys", "show", "zzzzzzzz"))[0] == 1


class _Unclosed:
    """The fixture's store, left open by the CLI (which closes what it is given)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def close(self) -> None:
        return None


@pytest.mark.asyncio
async def test_a_malformed_key_row_reads_as_unknown(request, backend):
    if backend != "azurite":
        pytest.skip("only a real table can hold a hand-edited row")
    from azure.data.tables.aio import TableClient

    table = f"keys{uuid.uuid4().hex[:10]}"
    connection = request.getfixturevalue("azurite").connection_string
    store = open_key_store(connection, table=table)
    good = record()
    await store.create_key(good)  # creates the table
    async with TableClient.from_connection_string(connection, table) as client:
        await client.upsert_entity({"PartitionKey": "key", "RowKey": "f" * 64, "prefix": "x",
                                    "tenant": "acme", "name": "n", "created": "yesterday"})
    try:
        assert await store.get_key("f" * 64) is None
        assert await store.get_key(good.key_hash) == good
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_admin_cli_names_a_guardrail_policy_for_keys_and_tenants(key_store, backend):
    async def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = await admin(list(argv), {}, out, store=_Unclosed(key_store), now=lambda: NOW)
        return code, out.getvalue()

    code, text = await run("keys", "create", "--tenant", "acme", "--name", "ci",
                           "--guardrail", "strict")
    key = text.splitlines()[-1]
    assert code == 0 and (await key_store.get_key(key_hash(key))).guardrail == "strict"
    assert "strict" in (await run("keys", "show", key))[1]
    assert (await run("keys", "update", key, "--guardrail", ""))[0] == 0
    assert (await key_store.get_key(key_hash(key))).guardrail == ""
    assert (await run("tenants", "set", "acme", "--guardrail", "lenient"))[0] == 0
    assert (await key_store.get_tenant("acme")).guardrail == "lenient"
    assert (await run("keys", "update", key, "--guardrail", "bad name!"))[0] == 2
