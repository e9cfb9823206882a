"""Where a process's CPU goes by owner, from py-spy raw samples (load/profile_streams.py --spy).

    .venv/bin/python load/spy_owners.py load/results/profile-streams-worker.txt [--top 3]

Each busy sample (not waiting in epoll) is charged to the owner of its innermost frame: the
kernel (a syscall: read, write, connect...), the gateway (function_app/), the upstream client
(aiohttp, httpx), the server stack (uvicorn, Starlette, FastAPI, anyio), the event loop
(uvloop, asyncio), the worker runtime or local host (azure_functions_runtime, funchost),
the garbage collector, or other; an interpreter frame (reference counting, a call) is charged to
the nearest caller with an owner. Samples are also split by phase: a stream's open (the
function's invocation and pipeline on the stack) or its body (everything else). Shares are of
busy samples; multiply by the CPU per chunk the profile reports for microseconds.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

SYSCALLS = ("read", "write", "writev", "connect", "accept4", "socket", "epoll_ctl", "close",
            "setsockopt", "getsockname", "getpeername", "sendmsg", "recvmsg", "syscall",
            "pthread_cond_signal")
OWNERS = (("gateway", ("function_app/",)),
          ("upstream client", ("aiohttp/", "httpx/", "httpx_aiohttp/", "_http_parser",
                               "aiohappyeyeballs/", "client_proto", "yarl/", "multidict")),
          ("server stack", ("uvicorn/", "starlette/", "fastapi/", "anyio/", "httptools/",
                            "llhttp", "parser.c", "api.c", "url_parser")),
          ("event loop", ("uvloop/", "asyncio/", "loop.c", "_asynciomodule", "core.c",
                          "linux.c", "stream.c", "handle", "uv__", "uv_")),
          ("runtime / host", ("azure_functions_runtime/", "funchost/", "datumdef",
                              "azurefunctions/", "meta.py", "messages.py")),
          ("garbage collector", ("gc_collect", "gcmodule", "gc.c")))


OPEN_MARKS = ("proxy (function_app/app.py", "with_gateway.", "Front.serve (",
              "HttpToolsProtocol.__init__", "HttpToolsProtocol.connection_made",
              "create_protocol (", "WorkerHttp.request (")


def owner(frames: list[str]) -> str:
    """The innermost frame's owner; interpreter frames (reference counting, calls) are
    charged to the nearest caller that has one."""
    name = frames[-1].split(" (", 1)[0]
    if name in SYSCALLS or name.startswith("__libc_"):
        return "kernel (syscalls)"
    for frame in reversed(frames):
        for who, marks in OWNERS:
            if any(mark in frame for mark in marks):
                return who
    return "other (interpreter, libc)"


def summarize(path: Path, phase: str | None = None) -> dict:
    by_owner: collections.Counter = collections.Counter()
    by_phase: collections.Counter = collections.Counter()
    leaves: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or "epoll_pwait" in frames[-1]:
            continue
        n = int(count)
        opening = any(mark in f for f in frames for mark in OPEN_MARKS) \
            and not any(f.startswith("relay_body (") for f in frames)
        by_phase["open" if opening else "body"] += n
        if phase is not None and phase != ("open" if opening else "body"):
            continue
        busy += n
        who = owner(frames)
        by_owner[who] += n
        leaves[who][re.sub(r":\d+\)", ")", frames[-1])] += n
    return {"busy": busy, "owners": by_owner, "phases": by_phase, "leaves": leaves}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--phase", choices=("open", "body"), default=None,
                        help="owners of this phase's samples only (shares of that phase)")
    args = parser.parse_args()
    found = summarize(args.path, args.phase)
    phases = found["phases"]
    busy = max(found["busy"], 1)
    print(f"{found['busy']} busy samples{' (' + args.phase + ')' if args.phase else ''}; "
          "phases: " + ", ".join(f"{k} {v / max(sum(phases.values()), 1):.0%}"
                                 for k, v in phases.most_common()))
    for who, n in found["owners"].most_common():
        top = ", ".join(f"{leaf} {m / busy:.1%}"
                        for leaf, m in found["leaves"][who].most_common(args.top))
        print(f"{n / busy:6.1%}  {who}: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
