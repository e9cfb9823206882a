"""The garbage collector at start-up: paused while start-up makes its objects, which are frozen
once made, and settled once the worker's gateway is built (#26).

Imported by main.py before anything else, so this module imports nothing but `gc` and
`contextlib` (both loaded by the interpreter or the platform anyway): whatever it imported would
be made with the collector still running.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Young collections start at this many net new objects (Python's default: 2,000). The objects
# of the requests in flight (32 at once: several thousand) crossed 2,000 over and over, and each
# collection walked them: 60 young collections per 1,000 requests, 47 us per request of the
# worker's CPU. At 10,000 they ran 0.5 times per 1,000 requests (2 us per request); requests
# leave no cyclic garbage behind (profile_worker_calls.py --mode garbage), so what waits for a
# collection is at most this many objects.
YOUNG_THRESHOLD = 10_000

FULL_EVERY = 100  # middle-generation collections per full one at most (CPython's default: 10)
_settled = False  # settle_collector ran in this process


@contextmanager
def start_up_objects() -> Iterator[None]:
    """The collector paused while start-up makes its objects, and those objects frozen once they
    are made: the import of main.py (function indexing) and the worker's gateway build.

    Start-up makes objects that live as long as the process (modules, classes, the app, the
    gateway), and the collector walked them again and again as they were made: 37-46 young and
    older collections during the import of main.py, about a fifth of its CPU, and 22 during the
    build (docs/perf/pass13-coldstart.md). Paused, none runs; frozen (`gc.freeze`), no later
    collection walks them either (as `settle_collector` does once the build is done).

    What it costs: the cyclic garbage start-up leaves (classes that dataclass and attrs builders
    make and drop, ~1,300 objects and ~0.3 MB shallow for the import and the first build) is
    frozen with the rest and never freed, a one-time amount. While the build awaits (the
    limiter's storage), the rest of the process runs with the collector paused, for that long
    only; reference counting still frees everything that is not a cycle. An exception leaves
    the collector as it was (enabled again, nothing frozen). A collector already paused by the
    process (gc.disable() before) is left alone."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()


def settle_collector() -> None:
    """Once a process, after the worker's gateway is built: start-up's objects leave the
    collector's generations, young collections wait for YOUNG_THRESHOLD net new objects, and a
    full collection for FULL_EVERY middle-generation ones. A later call changes nothing (an
    operator's own tuning after the build stays).

    Frozen (`gc.freeze`): every object alive once the build is done (modules, the app, the
    worker's server, the gateway: about 90,000 in the worker). They live as long as the process,
    and every full collection walked them: about 20 us per request in the worker
    (`load/profile_worker_calls.py --mode cpu`: old-generation time 22 -> 0.4 us per request),
    and with a thousand streams open a pause of ~390 ms of the worker's loop, every stream's
    chunks waiting behind it (`load/bench_streams.py --gc-watch`; 75-280 ms frozen, none with
    full collections spaced). Those full collections found no garbage: reference counting frees
    what requests and streams leave. What it costs: a reference cycle that reaches the oldest
    generation is freed later, and one among frozen objects dropped later never (a bounded,
    one-time amount). Nothing is collected before freezing, so the first request does not wait
    for a collection. Once a process by a flag: main.py's import has already frozen its own
    objects (`start_up_objects`), so whether anything is frozen cannot tell.
    """
    global _settled
    if not _settled:
        _settled = True
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, FULL_EVERY)
