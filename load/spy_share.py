"""Own-time shares by package from a py-spy raw profile: where the event loop's samples land.

    .venv/bin/py-spy record -r 500 -f raw -o /tmp/spy.txt --nonblocking -- \\
        .venv/bin/python load/profile_pipeline.py --requests 6000 --rounds 3 --log
    .venv/bin/python load/spy_share.py /tmp/spy.txt [--top 25] [--functions]

Only samples taken inside the event loop's callbacks count (start-up and imports are left out);
each is charged to the function it was in (its own time, not its callers'), grouped by
function_app package or file, or by library. Sampled, unlike cProfile's counts: no per-call
overhead, but garbage collection is charged to whatever line allocated when it ran.
"""

from __future__ import annotations

import argparse
import collections
import re

_FRAME = re.compile(r"(?P<func>.*?) \((?P<path>.*?):\d+\)$")


def group(path: str, functions: bool, func: str) -> str:
    if "function_app/" in path:
        inner = path.split("function_app/")[-1]
        where = "function_app/" + (inner.split("/")[0] if "/" in inner else inner)
    else:  # a library or the standard library: its top-level package (py-spy may print the
        # path from site-packages or the standard library's folder, or whole)
        where = path.split("site-packages/")[-1].split("/lib/python3.13/")[-1].split("/")[0]
    return f"{where} {func}" if functions else where


def shares(raw: str, functions: bool) -> tuple[int, collections.Counter]:
    counted: collections.Counter = collections.Counter()
    total = 0
    with open(raw) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if "_run_once" not in stack or "importlib" in stack or "build_gateway" in stack:
                continue
            total += int(count)
            found = _FRAME.match(stack.split(";")[-1])
            key = group(found["path"], functions, found["func"]) if found else "?"
            counted[key] += int(count)
    return total, counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--functions", action="store_true", help="by function, not package")
    args = parser.parse_args()
    total, counted = shares(args.raw, args.functions)
    print(f"{total} samples in the event loop")
    for key, count in counted.most_common(args.top):
        print(f"{100 * count / total:5.1f}%  {key}")


if __name__ == "__main__":
    main()
