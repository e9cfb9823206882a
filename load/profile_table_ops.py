"""Python calls (cProfile, deterministic) and CPU per Azure Table operation, against Azurite: the
SDK's own table client beside the one LazyTable gives (function_app/adapters/azure_table.py),
and the routing store's reads (adapters/breakerstore_table.py).

    .venv/bin/python load/profile_table_ops.py [--ops 200] [--by file|function|policy] [--top 25]
        [--pairs 10]

One process, one Azurite; each operation runs `--ops` times per client, first under cProfile
(calls per operation, by source file) and then without it (CPU microseconds per operation,
process time, the median of 5 batches in a row: noisy on a shared machine; the calls are the
evidence).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azure.data.tables import UpdateMode  # noqa: E402
from azure.data.tables.aio import TableServiceClient  # noqa: E402

from function_app.adapters.azure_table import LazyTable, eq, write_row  # noqa: E402
from function_app.adapters.breakerstore_table import TableRoutingStore  # noqa: E402
from function_app.adapters.limitstore_table import TableRateLimitStore  # noqa: E402
from function_app.ratelimit.store import RowKey  # noqa: E402
from function_app.routing.breaker import SharedState  # noqa: E402
from function_app.routing.store import ProbeResult  # noqa: E402
from scripts.azurite import Azurite  # noqa: E402

TABLE = "opsbench"


def operations(client, store: TableRoutingStore | None, row: str,
               lazy: LazyTable | None = None) -> dict:
    """name -> coroutine function doing one operation (with `lazy`, also its plain ones and
    the limiter's store over it)."""
    state: dict = {"etag": None}

    async def get():
        await client.get_entity("p", "r1")

    async def query():
        async for _ in client.query_entities("PartitionKey eq @p", parameters={"p": "q"}):
            pass

    async def upsert():
        await client.upsert_entity({"PartitionKey": "p", "RowKey": "r2", "v": 1.0},
                                   mode=UpdateMode.REPLACE)

    async def update():
        meta = await write_row(client, {"PartitionKey": "p", "RowKey": row, "v": 2.0},
                               state["etag"])
        state["etag"] = meta["etag"]

    ops = {"get_entity": get, "query_entities (2 rows)": query, "upsert_entity": upsert,
           "update_entity (If-Match)": update}
    if store is not None:
        async def breakers():
            await store.read_breakers()

        async def probes():
            await store.read_probes()

        async def both():
            await store.read_both()
        results = [ProbeResult(name, True, 1.0, 2.0, 200) for name in ("a", "b", "c")]

        async def probes_each():
            for result in results:
                await store.record_probe(result)

        async def probes_batch():
            await store.record_probes(results)
        ops.update({"store.record_probe x 3": probes_each,
                    "store.record_probes (3 rows, one batch)": probes_batch})
        ops.update({"store.read_breakers (2 rows)": breakers,
                    "store.read_probes (0 rows)": probes,
                    "store.read_both (2 + 0 rows)": both})
    if lazy is not None:
        limits = TableRateLimitStore(lazy._service, lazy._name)
        key = RowKey("p", "r1")
        plain: dict = {"etag": None, "lim": None}
        fields = {"tokens": 12.0, "ts": 1_700_000_000.25, "goal": 3.0, "holder": "gw-1"}

        async def plain_get():
            await lazy.get("p", "r1")

        async def plain_query():
            await lazy.query(eq("PartitionKey", "q"))

        async def plain_upsert():
            await lazy.upsert({"PartitionKey": "p", "RowKey": "r2", "v": 1.0})

        async def plain_replace():
            plain["etag"] = await lazy.write({"PartitionKey": "p", "RowKey": row + "p",
                                              "v": 2.0}, plain["etag"])

        async def limit_read():
            await limits.read(key)

        async def limit_write():
            plain["lim"] = await limits.write(RowKey("p", row + "l"), fields, plain["lim"])

        async def limit_put():
            await limits.put(RowKey("p", row + "t"), fields)

        async def limit_query():
            await limits.query("q")
        ops.update({"plain get": plain_get, "plain query (2 rows)": plain_query,
                    "plain upsert": plain_upsert, "plain replace (If-Match)": plain_replace,
                    "limits.read": limit_read, "limits.write (If-Match)": limit_write,
                    "limits.put": limit_put, "limits.query (2 rows)": limit_query})
    return ops


def short(path: str) -> str:
    return path.split("site-packages/")[-1].replace(str(ROOT) + "/", "")


def by_file(stats: pstats.Stats) -> Counter:
    """Calls by source file; a built-in's calls go to its callers' files."""
    found: Counter = Counter()
    for (path, _line, _name), (_cc, calls, _tt, _ct, callers) in stats.stats.items():
        if path == "~":
            for (cpath, _l, _n), counts in callers.items():
                found[short(cpath)] += counts[1] if isinstance(counts, tuple) else counts
        else:
            found[short(path)] += calls
    return found


async def profiled(op, n: int) -> pstats.Stats:
    await op()  # warm: connection, first-call caches
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        await op()
    prof.disable()
    return pstats.Stats(prof)


async def timed(op, n: int) -> float:
    began = time.process_time()
    for _ in range(n):
        await op()
    return (time.process_time() - began) * 1e6 / n


# (what main 0d9528d's code used, what this branch's uses) for the same storage work
PAIRS = (("get_entity", "limits.read"), ("update_entity (If-Match)", "limits.write (If-Match)"),
         ("upsert_entity", "limits.put"), ("query_entities (2 rows)", "limits.query (2 rows)"))


async def pairs(ops: dict, args: argparse.Namespace) -> None:
    """CPU per operation of each PAIRS pair in alternating batches in this one process: the
    median of `--pairs` batches each, and in how many the second was cheaper."""
    print("\n| SDK path (main) | plain path (branch) | CPU us/op main | branch | branch "
          "lower in |\n|---|---|---:|---:|---:|")
    n = max(1, args.ops // 4)
    for old, new in PAIRS:
        a, b = [], []
        for k in range(args.pairs):
            order = (old, new) if k % 2 == 0 else (new, old)
            for name in order:
                (a if name == old else b).append(await timed(ops[name], n))
        lower = sum(y < x for x, y in zip(a, b, strict=True))
        print(f"| {old} | {new} | {statistics.median(a):.0f} | {statistics.median(b):.0f} | "
              f"{lower} of {args.pairs} |")


async def main(args: argparse.Namespace) -> None:
    logs = Path(tempfile.mkdtemp(prefix="tableops-"))
    azurite = Azurite(logs).start()
    try:
        options = {"retry_total": 0, "use_env_settings": False}
        service = TableServiceClient.from_connection_string(azurite.connection_string,
                                                            **options)
        await service.create_table_if_not_exists(TABLE)
        await service.create_table_if_not_exists("routing")
        sdk = TableServiceClient.from_connection_string(
            azurite.connection_string, **options).get_table_client(TABLE)  # its own service
        lazy = LazyTable(service, TABLE)
        lean = await lazy.ready()
        store = TableRoutingStore(service, "routing")
        for name in ("a", "b"):
            await store.write_breaker(name, SharedState("closed", 1.0, 0.0, ""), None)
        await sdk.upsert_entity({"PartitionKey": "p", "RowKey": "r1", "v": 1.0})
        for row in ("q1", "q2"):  # the query's partition: two rows
            await sdk.upsert_entity({"PartitionKey": "q", "RowKey": row, "v": 1.0})
        print("lean policies:", [type(p).__name__ for p in
                                 lean._client._client._pipeline._impl_policies])
        clients = {"SDK table client": operations(sdk, None, "u1"),
                   "LazyTable client": operations(lean, store, "u2", lazy)}
        print(f"# profile_table_ops: {args.ops} operations each, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
        print("| client | operation | calls/op | CPU us/op |\n|---|---|---:|---:|")
        details = []
        for label, ops in clients.items():
            for name, op in ops.items():
                stats = await profiled(op, args.ops)
                calls = sum(s[1] for s in stats.stats.values()) / args.ops
                cpu = []
                for _ in range(5):
                    cpu.append(await timed(op, args.ops))
                print(f"| {label} | {name} | {calls:.0f} | {statistics.median(cpu):.0f} |")
                files = by_file(stats) if args.by == "file" else Counter({
                    f"{short(p)}:{line}({fn})": s[1] for (p, line, fn), s in stats.stats.items()})
                details.append(f"\n{label}, {name}: " + ", ".join(
                    f"{k} {v / args.ops:.0f}" for k, v in files.most_common(args.top)))
        print("\n".join(details))
        if args.pairs:
            await pairs(clients["LazyTable client"], args)
        await sdk.close()
        await service.close()
    finally:
        azurite.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--by", choices=("file", "function"), default="file")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pairs", type=int, default=0,
                        help="also N alternating CPU batches of each main/branch pair")
    asyncio.run(main(parser.parse_args()))
