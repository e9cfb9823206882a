"""Instructions per call of the request log's pieces, counted by valgrind (callgrind): where the
request-log line's instructions go, piece by piece, for the tree in the current directory.

    .venv/bin/python load/telemetry_pieces.py [--calls 2000] [PIECE ...]

Each piece runs in its own `valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=*functools_reduce*` process (PYTHONHASHSEED=0, two at a time): the child sets
up the request log as load/telemetry_instructions.py's child does (funchost/worklog.py's
handler writing to /dev/null, its flush timer held so that no write happens per line), calls
the piece 200 times, then --calls times inside one `functools.reduce`, the only part counted.
The figure is that count over --calls; `empty` (a call that does nothing) is the loop's own
share, to subtract. Pieces (default: all):

- write_request: RequestLog.write_request, Telemetry.finish's call (the line made, the record,
  the handlers);
- write_line: RequestLog.write_line of a made line (the record and the handlers);
- make: RecordMaker.make (the record alone);
- emit: RequestLog._emit of a made record (the walk to the handlers, their lock, the handler);
- handler_emit: the local worker's handler's emit (formatting and the buffered write);
- handler_format: its format alone;
- empty.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

CHILD = r'''
import functools, logging, os, sys
sys.path.insert(0, os.getcwd())
from funchost import worklog
handler = worklog.install()
handler.stream = open(os.devnull, "w")
handler._timer = object()  # as if a flush were due: no write and no timer per line
from function_app.telemetry.request_log import RequestLog

log = RequestLog()
LINE = ('{"request_id":"r-1","trace_id":"0af7651916cd43dd8448eb211c80319c","method":"POST",'
        '"route":"/infer/node","backend":"node","model":"-","status":200,"latency_ms":1.23,'
        '"client":"c0ffee"}')
record = log._records.make(LINE)
logger = logging.getLogger("gateway.requests")
try:  # the trace id as text (pass 14 on) or as a number (before)
    log.write_request("r-1", "0af7651916cd43dd8448eb211c80319c", "POST", "/infer/node", "node",
                      "-", 200, 0.00123456, "c0ffee")
    TRACE = "0af7651916cd43dd8448eb211c80319c"
except TypeError:
    TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PIECES = {
    "empty": lambda: None,
    "write_request": lambda: log.write_request("r-1", TRACE, "POST", "/infer/node", "node", "-",
                                               200, 0.00123456, "c0ffee"),
    "write_line": lambda: log.write_line(LINE),
    "make": lambda: log._records.make(LINE),
    "emit": lambda: RequestLog._emit(logger, record),
    "handler_emit": lambda: handler.emit(record),
    "handler_format": lambda: handler.format(record),
}
piece, calls = PIECES[sys.argv[1]], int(sys.argv[2])
for _ in range(200):
    piece()
functools.reduce(lambda _, __: piece(), range(calls), None)
'''
PIECES = ("empty", "write_request", "write_line", "make", "emit", "handler_emit",
          "handler_format")


def counted(piece: str, calls: int, script: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        err = subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no",
             "--toggle-collect=*functools_reduce*", f"--callgrind-out-file={tmp}/out",
             sys.executable, script, piece, str(calls)],
            env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
            check=True).stderr
    return int(re.search(r"Collected : (\d+)", err).group(1)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("pieces", nargs="*", help=f"of: {', '.join(PIECES)}")
    args = parser.parse_args()
    args.pieces = args.pieces or list(PIECES)
    if unknown := set(args.pieces) - set(PIECES):
        parser.error(f"unknown pieces: {sorted(unknown)}")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CHILD)
    try:
        with ThreadPoolExecutor(2) as pool:
            figures = list(pool.map(lambda p: counted(p, args.calls, f.name), args.pieces))
    finally:
        os.unlink(f.name)
    print(f"instructions per call (callgrind, {args.calls} calls; {os.getcwd()}):")
    for piece, figure in zip(args.pieces, figures, strict=True):
        print(f"  {piece:<16}{figure:>10,.0f}")


if __name__ == "__main__":
    main()
