"""Profiling inside a running worker, switched by signals (load/profile_worker_calls.py).

On PYTHONPATH with WORKER_CPROFILE_OUT set: SIGUSR1 starts counting (cProfile unless
WORKER_CPROFILE_GC_ONLY is set, and the time spent in garbage collection per generation),
SIGUSR2 stops and writes WORKER_CPROFILE_OUT/<pid>.prof (when profiled) and <pid>.gc.json
(collections and their time per generation, async generators the loop had to finalise, tracked
objects at start and end). More, each read at SIGUSR1: WORKER_CPROFILE_GARBAGE (objects only
the cycle collector freed, and object kinds grown since the start), WORKER_CPROFILE_FREEZE
(`gc.freeze()` first), WORKER_CPROFILE_THRESHOLD (the young generation's threshold: try one).
Without WORKER_CPROFILE_OUT this does nothing. A benchmark aid only: the product never loads it.
"""

import os

if os.environ.get("WORKER_CPROFILE_OUT"):
    import cProfile
    import gc
    import json
    import signal
    import sys
    import time
    import types

    _out = os.environ["WORKER_CPROFILE_OUT"]
    _profile = None if os.environ.get("WORKER_CPROFILE_GC_ONLY") else cProfile.Profile()
    _gc = {"on": False, "began": 0.0, "seconds": [0.0, 0.0, 0.0], "count": [0, 0, 0]}

    def _collected(phase: str, info: dict) -> None:
        if not _gc["on"]:
            return
        if phase == "start":
            _gc["began"] = time.process_time()
        else:
            generation = info["generation"]
            _gc["seconds"][generation] += time.process_time() - _gc["began"]
            _gc["count"][generation] += 1

    gc.callbacks.append(_collected)

    _garbage = bool(os.environ.get("WORKER_CPROFILE_GARBAGE"))

    def _named(obj) -> str:
        """A garbage object's type, with the code it belongs to for frames and functions."""
        kind = type(obj).__qualname__
        code = obj.f_code if isinstance(obj, types.FrameType) else \
            obj.__code__ if isinstance(obj, types.FunctionType) else \
            obj.cr_code if isinstance(obj, types.CoroutineType) else None
        if code is not None:
            return f"{kind} {code.co_filename.rsplit('/', 1)[-1]} {code.co_qualname}"
        return kind

    def _kinds() -> dict[str, int]:
        gc.collect()
        kinds: dict[str, int] = {}
        for obj in gc.get_objects():
            kinds[_named(obj)] = kinds.get(_named(obj), 0) + 1
        return kinds

    _finalised: dict[str, int] = {}

    def _count_finalised() -> None:
        """Async generators dropped unclosed reach the loop's finaliser hook (a task and a
        wake-up each): count them by name, for generators first iterated from now on."""
        hooks = sys.get_asyncgen_hooks()
        if hooks.finalizer is None or getattr(hooks.finalizer, "counted", False):
            return

        def finalizer(agen) -> None:
            _finalised[agen.__qualname__] = _finalised.get(agen.__qualname__, 0) + 1
            hooks.finalizer(agen)

        finalizer.counted = True
        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finalizer)

    def _start(_signum, _frame) -> None:
        global _profile
        _finalised.clear()
        _count_finalised()
        if os.environ.get("WORKER_CPROFILE_FREEZE"):
            gc.freeze()  # what a gc.freeze() after start-up would leave to collect
        if os.environ.get("WORKER_CPROFILE_THRESHOLD"):
            gc.set_threshold(int(os.environ["WORKER_CPROFILE_THRESHOLD"]), *gc.get_threshold()[1:])
        if _garbage:
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
        _gc.update(on=True, seconds=[0.0, 0.0, 0.0], count=[0, 0, 0],
                   objects=len(gc.get_objects()), kinds=_kinds() if _garbage else {})
        if _profile is not None:
            # A fresh profile per window: a Profile's counts accumulate across enable/disable,
            # so a second round's file held the first's calls too (divided by its own requests).
            _profile = cProfile.Profile()
            _profile.enable()

    def _stop(_signum, _frame) -> None:
        _gc["on"] = False
        if _profile is not None:
            _profile.disable()
            _profile.dump_stats(os.path.join(_out, f"{os.getpid()}.prof.tmp"))
            os.replace(os.path.join(_out, f"{os.getpid()}.prof.tmp"),
                       os.path.join(_out, f"{os.getpid()}.prof"))
        kinds: dict[str, int] = {}
        if _garbage:
            gc.collect()
            gc.set_debug(0)
            for obj in gc.garbage:
                kinds[_named(obj)] = kinds.get(_named(obj), 0) + 1
            gc.garbage.clear()
            after = _kinds()
            grown = {k: n - _gc["kinds"].get(k, 0) for k, n in after.items()}
            _gc["grown"] = {k: n for k, n in grown.items() if n > 0}
        with open(os.path.join(_out, f"{os.getpid()}.gc.json"), "w") as f:
            json.dump({"seconds": _gc["seconds"], "count": _gc["count"], "garbage": kinds,
                       "grown": _gc.get("grown", {}), "finalised": _finalised,
                       "objects": [_gc["objects"], len(gc.get_objects())]}, f)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
