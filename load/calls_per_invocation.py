"""Python calls per request from the worker profiles `profile_worker_calls.py --mode calls`
leaves, divided by the requests the profiled window itself holds, not by wrk's count.

    .venv/bin/python load/calls_per_invocation.py PROFILE_DIR [--top 40] [--match TEXT ...]

PROFILE_DIR is the `prof` folder the run names (`gateway-0.prof`, `gateway base-0.prof`,
`ten-line-0.prof`). profile_worker_calls divides by the requests wrk completed while the
profile was on, so the requests in flight when it starts and stops (up to the 32 connections)
move every figure by up to 32 / requests: 3-8 % on a busy machine, where a window holds
400-900 requests. Here each profile is divided by its calls of the worker library's
`HttpCoordinator.set_http_request`, made once per HTTP invocation that reached the worker's
server inside the window, so a function that runs once a request reads 1.00 in each profile.
Rows are per source file (paths of an exported `--base` tree read as the working tree's, and
C functions by name), each target beside the others; `--match` keeps the rows naming any TEXT.
"""

from __future__ import annotations

import argparse
import pstats
import re
from pathlib import Path

MARK = ("azure_functions_runtime/http_v2.py", "set_http_request")


def per_file(path: Path) -> tuple[float, dict[str, float]]:
    """Requests in the window (calls of MARK) and calls per request by file."""
    stats = pstats.Stats(str(path)).stats
    requests = sum(calls for (file, _line, name), (_cc, calls, *_rest) in stats.items()
                   if file.endswith(MARK[0]) and name == MARK[1])
    table: dict[str, float] = {}
    for (file, _line, name), (_cc, calls, *_rest) in stats.items():
        key = _short(file, name)
        table[key] = table.get(key, 0.0) + calls / requests
    return requests, table


def _short(file: str, name: str) -> str:
    if file == "~":  # a C function: its name, without the address of its type
        return "(C) " + re.sub(r" at 0x[0-9a-f]+", "", name)
    for anchor in ("site-packages/", "python3.13/"):
        if anchor in file:
            return file.split(anchor, 1)[1]
    for package in ("/function_app/", "/funchost/", "/load/"):
        if package in file:
            return package[1:] + file.split(package, 1)[1]
    return file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", nargs="*", default=[])
    args = parser.parse_args()
    names = [n for n in ("gateway", "gateway base", "ten-line")
             if (args.folder / f"{n}-0.prof").exists()]
    got = {n: per_file(args.folder / f"{n}-0.prof") for n in names}
    for name, (requests, table) in got.items():
        print(f"{name}: {requests} requests in the window, {sum(table.values()):.1f} calls each")
    first, second = names[0], names[1]
    files = set().union(*(table for _, table in got.values()))
    rows = sorted(files, key=lambda f: got[first][1].get(f, 0) - got[second][1].get(f, 0))
    if args.match:
        rows = [f for f in rows if any(text in f for text in args.match)]
    else:
        rows = [f for f in rows if abs(got[first][1].get(f, 0) - got[second][1].get(f, 0)) >= 0.5]
        if len(rows) > 2 * args.top:  # the largest cuts and the largest additions
            rows = rows[:args.top] + rows[-args.top:]
    print("calls per request: " + ", ".join(names) + f"; {first} - {second}")
    for file in rows:
        values = " ".join(f"{got[n][1].get(file, 0):8.2f}" for n in names)
        print(f"{values} {got[first][1].get(file, 0) - got[second][1].get(file, 0):+8.2f}  {file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
