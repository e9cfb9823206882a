"""Python bytecodes per request in the rate-limit stage, in one process, by function (and by line
with --lines): load/profile_limiter.py's stage (lease mode, limits of 1,000,000 far from
binding, the memory store, the system clock), counted with sys.monitoring's INSTRUCTION event
over N requests, less the same loop without the stage.

    .venv/bin/python load/limiter_bytecodes.py [--requests 5000] [--tree DIR] [--lines]

A quick, deterministic-enough look at the fast path (a lease every few hundred requests moves
the figure by a few bytecodes); the worker's own figure is load/instructions_per_request.py's.
`--tree DIR` counts another tree's function_app (`git archive REV | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import asyncio
import linecache
import sys
from pathlib import Path

from bytecode_count import instructions

ROOT = Path(__file__).resolve().parents[1]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--lines", action="store_true", help="also by line of function_app")
    parser.add_argument("--top", type=int, default=20)
    return parser.parse_args()


async def count(args: argparse.Namespace) -> None:
    import profile_limiter as pl

    stage, request, limiter = pl.build("lease")
    clients = ["198.51.100.1"]
    for _ in range(50):  # warm up: leases granted
        await pl.loop(stage, request, clients, 200)
        await asyncio.sleep(0.02)
    tables = []
    for target in (None, stage):
        counts: dict = {}

        def seen(code, offset, counts=counts):
            key = (code, offset)
            counts[key] = counts.get(key, 0) + 1

        with instructions(seen, "limiter_bytecodes"):
            await pl.loop(target, request, clients, args.requests)
        tables.append(counts)
    await limiter.close()
    tree = str(args.tree.resolve())
    by_function: dict[str, float] = {}
    by_line: dict[tuple[str, int | None, str], float] = {}
    for sign, counts in ((-1, tables[0]), (1, tables[1])):
        for (code, offset), n in counts.items():
            name = f"{code.co_filename.removeprefix(tree + '/')}:{code.co_qualname}"
            by_function[name] = by_function.get(name, 0.0) + sign * n / args.requests
            if args.lines and "function_app/" in code.co_filename:
                line = next((ln for start, end, ln in code.co_lines() if start <= offset < end),
                            None)
                key = (code.co_filename, line, code.co_qualname)
                by_line[key] = by_line.get(key, 0.0) + sign * n / args.requests
    print(f"{tree}: {sum(by_function.values()):.1f} bytecodes per request in the stage")
    for name, n in sorted(by_function.items(), key=lambda kv: -abs(kv[1]))[:args.top]:
        print(f"{n:9.1f}  {name}")
    for (path, line, qualname), n in sorted(by_line.items(), key=lambda kv: kv[0]):
        if n >= 0.5:
            text = linecache.getline(path, line).strip() if line else ""
            print(f"{n:7.1f}  {qualname}:{line}  {text}")


def main() -> None:
    args = arguments()
    sys.path.insert(0, str(args.tree.resolve()))
    sys.path.insert(1, str(ROOT / "load"))
    asyncio.run(count(args))


if __name__ == "__main__":
    main()
