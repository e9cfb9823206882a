"""Garbage collector pauses of a benchmarked process (on its PYTHONPATH: load/bench_streams.py
--gc-watch puts this directory there for the host and the worker).

Every collection appends a line to $GCWATCH_FILE.<pid>:

    <generation> <pause ms> <objects walked> <objects freed> <ms so far: young middle old>
    <collections so far: young middle old> <longest pause ms: young middle old> <unix time>

(the objects walked: the generation's and the younger ones', counted before the clock starts).
Nothing is printed. $GCWATCH_THRESHOLD ("2000,10,100") sets the collector's thresholds first:
an experiment's knob (load/bench_streams.py --gc-threshold).
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
    _walked = [0]
    _ms = [0.0, 0.0, 0.0]
    _max = [0.0, 0.0, 0.0]
    _count = [0, 0, 0]

    def _watch(phase, info):
        generation = info["generation"]
        if phase == "start":
            _walked[0] = sum(len(gc.get_objects(g)) for g in range(generation + 1))
            _started[0] = time.perf_counter()
            return
        pause = (time.perf_counter() - _started[0]) * 1000
        _ms[generation] += pause
        _max[generation] = max(_max[generation], pause)
        _count[generation] += 1
        with open(_path, "a") as out:
            out.write(f"{generation} {pause:.2f} {_walked[0]} {info['collected']} "
                      f"{' '.join(f'{m:.1f}' for m in _ms)} {' '.join(map(str, _count))} "
                      f"{' '.join(f'{m:.2f}' for m in _max)} {time.time():.1f}\n")

    gc.callbacks.append(_watch)
