"""Python bytecodes executed inside a running worker, by function, switched by signals
(load/instructions_per_request.py --bytecodes).

On PYTHONPATH with WORKER_BYTECODES_OUT set: SIGUSR1 starts counting every bytecode instruction
(sys.monitoring's INSTRUCTION event) per code object, SIGUSR2 stops and writes
WORKER_BYTECODES_OUT/bc.<pid>.<n>.json ({"file:line(name)": count}). A count of work done inside
functions, which call counts (cProfile) do not see: a comprehension, an inlined loop, a long
function body. Deterministic for the same requests and code. Without WORKER_BYTECODES_OUT this
does nothing. A benchmark aid only: the product never loads it.
"""

import os

if os.environ.get("WORKER_BYTECODES_OUT"):
    import json
    import signal
    import sys

    _out = os.environ["WORKER_BYTECODES_OUT"]
    _mon = sys.monitoring
    _TOOL = 5
    _counts: dict = {}
    _dumps = [0]

    def _count(code, _offset):
        _counts[code] = _counts.get(code, 0) + 1

    def _start(_sig, _frame):
        _counts.clear()
        _mon.use_tool_id(_TOOL, "bytecodes")
        _mon.register_callback(_TOOL, _mon.events.INSTRUCTION, _count)
        _mon.set_events(_TOOL, _mon.events.INSTRUCTION)

    def _stop(_sig, _frame):
        _mon.set_events(_TOOL, 0)
        _mon.register_callback(_TOOL, _mon.events.INSTRUCTION, None)
        _mon.free_tool_id(_TOOL)
        table: dict[str, int] = {}
        for code, n in _counts.items():
            key = f"{code.co_filename}:{code.co_firstlineno}({code.co_qualname})"
            table[key] = table.get(key, 0) + n
        _dumps[0] += 1
        path = os.path.join(_out, f"bc.{os.getpid()}.{_dumps[0]}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(table, f)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
