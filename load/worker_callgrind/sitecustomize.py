"""Run the worker under valgrind's callgrind, counting instructions only while told to
(load/profile_streams.py --callgrind; load/stream_callgrind.py).

On PYTHONPATH with WORKER_CALLGRIND_OUT set, a Python process started as `-m funchost.worker`
replaces itself (same pid) with `valgrind --tool=callgrind --instr-atstart=no` running the same
command: it starts at a few times its native speed and counts nothing until
`callgrind_control -i on <pid>`. Every other process (the local host) is left alone. A benchmark
aid only: the product never loads it.
"""

import os
import sys

if (os.environ.get("WORKER_CALLGRIND_OUT") and not os.environ.get("WORKER_CALLGRIND_ACTIVE")
        and "funchost.worker" in sys.orig_argv):
    os.environ["WORKER_CALLGRIND_ACTIVE"] = "1"  # the re-executed worker runs as it is
    _out = os.environ["WORKER_CALLGRIND_OUT"]
    sys.stdout.flush()
    os.execvp("valgrind", [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
        f"--callgrind-out-file={_out}/%p.out", sys.executable, *sys.orig_argv[1:]])
