"""Per-source work inside a running worker: which task's steps cost what (load/profile_timers.py).

On PYTHONPATH with TIMER_PROFILE_OUT set, asyncio.Task is replaced (before uvloop captures it)
by a subclass whose coroutine is wrapped: every step of every task (one `send`/`throw`, i.e. one
stretch the event loop cannot serve anything else) is timed and charged to a source, the first
coroutine of the function_app package on the task's await chain (else the task's root
coroutine): e.g. `SharedBreakers._refresh_loop`, the timer's `health_checks`, the HTTP handler.
Work outside task steps (protocol callbacks, the loop itself) is the source "(callbacks)".

Only the main thread's loop switches profiles (cProfile is one per process since Python 3.12),
and never inside another step.

SIGUSR1 starts recording, SIGUSR2 stops and writes TIMER_PROFILE_OUT/<pid>.json: per source the
steps, their summed and longest duration (perf_counter; the longest are the event loop's
blocks) and the slowest steps' chains. With TIMER_PROFILE_CALLS=1 a cProfile per source is
switched on around each step (and "(callbacks)" between steps) and written as
<pid>.<n>.prof; deterministic call counts, inflated times.
Without TIMER_PROFILE_OUT this does nothing. A benchmark aid only: the product never loads it.
"""

import os

if os.environ.get("TIMER_PROFILE_OUT"):
    import asyncio
    import collections.abc
    import cProfile
    import json
    import signal
    import threading
    import time

    _out = os.environ["TIMER_PROFILE_OUT"]
    _calls = os.environ.get("TIMER_PROFILE_CALLS") == "1"
    _state = {"on": False, "began": 0.0}
    _sources: dict = {}  # key -> [steps, seconds, max, durations]
    _slowest: list = []  # (seconds, key, chain)
    _profiles: dict = {}
    _other = [None]
    _CALLBACKS = "(callbacks)"
    _MAIN = threading.main_thread().ident
    _depth = [0]  # a step inside a step (or another thread's loop): no profile switch

    def _chain(coro) -> list:
        names, node = [], coro
        while node is not None and hasattr(node, "cr_code"):
            code = node.cr_code
            names.append((code.co_qualname, code.co_filename))
            node = node.cr_await
        return names

    def _key(names: list) -> str:
        for qualname, filename in names:
            if "/function_app/" in filename:
                return qualname
        return names[0][0] if names else "?"

    def _profile(key: str):
        found = _profiles.get(key)
        if found is None:
            found = _profiles[key] = cProfile.Profile()
        return found

    def _step(coro, method, arg):
        if not _state["on"]:
            return method(arg)
        names = _chain(coro)
        key = _key(names)
        prof = None
        main = threading.get_ident() == _MAIN
        if _calls and main and _depth[0] == 0:
            _other[0].disable()
            prof = _profile(key)
            prof.enable()
        _depth[0] += main
        began, began_cpu = time.perf_counter(), time.thread_time()
        try:
            return method(arg)
        finally:
            took = time.perf_counter() - began
            cpu = time.thread_time() - began_cpu
            _depth[0] -= main
            if prof is not None:
                prof.disable()
                if _state["on"]:
                    _other[0].enable()
            entry = _sources.get(key)
            if entry is None:
                entry = _sources[key] = [0, 0.0, 0.0, [], []]
            entry[0] += 1
            entry[1] += took
            entry[2] = max(entry[2], took)
            entry[3].append(took)
            entry[4].append(cpu)
            if len(_slowest) < 20 or took > _slowest[-1][0]:
                _slowest.append((took, key, " > ".join(n for n, _ in names), cpu))
                _slowest.sort(key=lambda s: -s[0])
                del _slowest[20:]

    class _Timed(collections.abc.Coroutine):
        """The task's coroutine, its steps timed; attributes read through to it."""

        __slots__ = ("_coro",)

        def __init__(self, coro):
            self._coro = coro

        def send(self, value):
            return _step(self._coro, self._coro.send, value)

        def throw(self, *exc):
            return _step(self._coro, lambda e: self._coro.throw(*exc), None)

        def close(self):
            return self._coro.close()

        def __await__(self):
            return self._coro.__await__()

        def __getattr__(self, name):
            return getattr(self._coro, name)

    class TimedTask(asyncio.Task):
        def __init__(self, coro, *args, **kwargs):
            if hasattr(coro, "cr_code"):
                coro = _Timed(coro)
            super().__init__(coro, *args, **kwargs)

    asyncio.Task = TimedTask
    asyncio.tasks.Task = TimedTask

    def _start(*_args) -> None:
        _sources.clear()
        _slowest.clear()
        _profiles.clear()
        _state["began"] = time.perf_counter()
        _state["on"] = True
        if _calls:
            _other[0] = _profile(_CALLBACKS)
            _other[0].enable()

    def _stop(*_args) -> None:
        _state["on"] = False
        if _calls and _other[0] is not None:
            _other[0].disable()
        pid = os.getpid()
        names = {}
        for n, (key, prof) in enumerate(_profiles.items()):
            prof.dump_stats(os.path.join(_out, f"{pid}.{n}.prof"))
            names[key] = f"{pid}.{n}.prof"
        report = {"seconds": time.perf_counter() - _state["began"],
                  "sources": {k: {"steps": v[0], "seconds": v[1], "max": v[2],
                                  "durations": v[3], "cpu": v[4]}
                              for k, v in _sources.items()},
                  "slowest": _slowest, "profiles": names}
        path = os.path.join(_out, f"{pid}.json")
        with open(path + ".tmp", "w") as file:
            json.dump(report, file)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
