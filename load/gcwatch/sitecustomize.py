"""Garbage collector pauses of a benchmarked process (on its PYTHONPATH: load/bench_streams.py
--gc-watch puts this directory there for the host and the worker).

Every collection's duration is added to its generation's total; each full (generation 2)
collection appends a line to $GCWATCH_FILE.<pid>: the pause in ms, the objects tracked after it,
the objects it found to be garbage, and the totals so far (ms per generation, collections per
generation). Nothing is printed. $GCWATCH_THRESHOLD ("2000,10,100") sets the collector's
thresholds first: an experiment's knob (load/bench_streams.py --gc-threshold).
"""

import gc
import os
import time

_path = os.environ.get("GCWATCH_FILE")
if os.environ.get("GCWATCH_THRESHOLD"):
    gc.set_threshold(*map(int, os.environ["GCWATCH_THRESHOLD"].split(",")))
if _path:
    _path = f"{_path}.{os.getpid()}"
    _started = [0.0]
    _ms = [0.0, 0.0, 0.0]
    _count = [0, 0, 0]

    def _watch(phase, info):
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        generation = info["generation"]
        pause = (time.perf_counter() - _started[0]) * 1000
        _ms[generation] += pause
        _count[generation] += 1
        if generation == 2:
            with open(_path, "a") as out:
                out.write(f"{pause:.2f} {len(gc.get_objects())} {info['collected']} "
                          f"{' '.join(f'{m:.1f}' for m in _ms)} {' '.join(map(str, _count))}\n")

    gc.callbacks.append(_watch)
