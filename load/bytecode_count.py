"""Python bytecodes run in this process, counted with sys.monitoring's INSTRUCTION event: the
switch the in-process counters share (load/path_bytecodes.py, load/limiter_bytecodes.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TOOL = 5  # the sys.monitoring tool id (load/worker_bytecodes uses the same; never both at once)


@contextmanager
def instructions(seen: Callable[[object, int], object], name: str = "bytecodes"
                 ) -> Iterator[None]:
    """`seen(code, offset)` for each bytecode this process runs inside the block."""
    mon = sys.monitoring
    mon.use_tool_id(TOOL, name)
    mon.register_callback(TOOL, mon.events.INSTRUCTION, seen)
    mon.set_events(TOOL, mon.events.INSTRUCTION)
    try:
        yield
    finally:
        mon.set_events(TOOL, 0)
        mon.free_tool_id(TOOL)
