"""Profiling inside a running worker, switched by signals (load/profile_worker_calls.py).

On PYTHONPATH with WORKER_CPROFILE_OUT set: SIGUSR1 starts counting (cProfile unless
WORKER_CPROFILE_GC_ONLY is set, and the time spent in garbage collection per generation),
SIGUSR2 stops and writes WORKER_CPROFILE_OUT/<pid>.prof (when profiled) and <pid>.gc.json
(collections and their time per generation, async generators the loop had to finalise, tracked
objects at start and end). More, each read at SIGUSR1: WORKER_CPROFILE_GARBAGE (objects only
the cycle collector freed, and object kinds grown since the start), WORKER_CPROFILE_FREEZE
(`gc.freeze()` first), WORKER_CPROFILE_THRESHOLD (the young generation's threshold: try one).
Per generation the .gc.json also holds the collecting thread's own CPU (`thread`: process time
counts the worker's other threads during a pause too), the longest pause, the objects walked
(the generation and the younger ones, counted before the clocks start) and the objects freed.
WORKER_CPROFILE_GCKINDS tallies what every fourth young collection walks, by kind (objects and
their referents); WORKER_CPROFILE_GCROOTS writes <pid>.roots.txt at two young collections: the
young objects held from outside the young generation, and by what. With
WORKER_CPROFILE_GARBAGE, <pid>.cycles.txt shows, for a few kinds of the garbage, one reference
path from an object back to itself.
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
    _fresh = {"thread": [0.0, 0.0, 0.0], "max": [0.0, 0.0, 0.0], "walked": [0, 0, 0],
              "max_walked": [0, 0, 0], "collected": [0, 0, 0]}
    _per_gen = {key: list(value) for key, value in _fresh.items()}
    _began_thread = [0.0]
    _walk_kinds = bool(os.environ.get("WORKER_CPROFILE_GCKINDS"))
    _young_kinds: dict[str, list[int]] = {}

    def _kind_of(obj) -> str:
        kind = type(obj)
        if kind in (dict, list, tuple, set):  # whose owner says more than their type
            return kind.__qualname__
        return f"{kind.__module__}.{kind.__qualname__}"

    _tallied = [0, 0.0]  # young collections tallied, seconds the tallies took

    _roots_wanted = bool(os.environ.get("WORKER_CPROFILE_GCROOTS"))

    def _describe(obj) -> str:
        if isinstance(obj, dict):
            return f"dict keys {list(obj)[:8]}"
        if isinstance(obj, types.FrameType):
            return f"frame {obj.f_code.co_filename.rsplit('/', 2)[-2:]} {obj.f_code.co_qualname}"
        if isinstance(obj, types.CoroutineType):
            return f"coroutine {obj.cr_code.co_qualname} running={obj.cr_frame is not None}"
        if isinstance(obj, types.FunctionType):
            return f"function {obj.__qualname__}"
        if isinstance(obj, types.CellType):
            return "cell"
        if isinstance(obj, (list, tuple, set)):
            return f"{type(obj).__qualname__} len {len(obj)}"
        return _kind_of(obj)

    def _young_roots() -> None:
        """Once: which objects of the young generation are held from outside it (their
        reference count beyond references from young objects), by kind, and who holds a few of
        each (the referrers outside the young generation)."""
        young = gc.get_objects(0)
        ids = {id(o) for o in young}
        internal: dict[int, int] = {}
        for o in young:
            for r in gc.get_referents(o):
                if id(r) in ids:
                    internal[id(r)] = internal.get(id(r), 0) + 1
        roots: dict[str, list] = {}
        for o in young:
            if sys.getrefcount(o) - 3 - internal.get(id(o), 0) > 0:
                roots.setdefault(_kind_of(o), []).append(o)
        lines = [f"young {len(young)} objects, {sum(map(len, roots.values()))} held from outside"]
        for kind, objs in sorted(roots.items(), key=lambda kv: -len(kv[1]))[:25]:
            lines.append(f"{len(objs):6d} {kind}")
            sample = objs[:3]
            for o in sample:
                lines.append(f"         {_describe(o)[:160]}")
                ours = (young, objs, sample)
                held = [r for r in gc.get_referrers(o) if id(r) not in ids
                        and not any(r is x for x in ours)
                        and not (isinstance(r, types.FrameType)
                                 and r.f_code.co_filename == __file__)]
                for r in held[:4]:
                    lines.append(f"           <- {_describe(r)[:200]}")
        with open(os.path.join(_out, f"{os.getpid()}.roots.txt"), "a") as f:
            f.write("\n".join(lines) + "\n\n")

    def _tally_young() -> None:
        """What a young collection is about to walk: objects and their referents, by kind
        (every fourth one: a tally takes longer than the collection)."""
        if _gc["count"][0] % 4:
            return
        began = time.perf_counter()
        _tallied[0] += 1
        for obj in gc.get_objects(0):
            entry = _young_kinds.setdefault(_kind_of(obj), [0, 0])
            entry[0] += 1
            entry[1] += len(gc.get_referents(obj))
        _tallied[1] += time.perf_counter() - began

    def _collected(phase: str, info: dict) -> None:
        if not _gc["on"]:
            return
        generation = info["generation"]
        if phase == "start":
            # The objects this collection walks: its generation and the younger ones (counted
            # before the clocks start, so not in the pause).
            walked = sum(len(gc.get_objects(g)) for g in range(generation + 1))
            if _walk_kinds and generation == 0:
                _tally_young()
            if _roots_wanted and generation == 0 and _gc["count"][0] in (3, 7):
                try:
                    _young_roots()
                except Exception:  # a probe's failure, written where its output goes
                    import traceback
                    with open(os.path.join(_out, f"{os.getpid()}.roots.txt"), "a") as f:
                        f.write(traceback.format_exc())
            _per_gen["walked"][generation] += walked
            _per_gen["max_walked"][generation] = max(_per_gen["max_walked"][generation], walked)
            _began_thread[0] = time.thread_time()
            _gc["began"] = time.process_time()
        else:
            _gc["seconds"][generation] += time.process_time() - _gc["began"]
            _gc["count"][generation] += 1
            # The collecting thread's own CPU (process_time also holds the worker's other
            # threads' time during the pause: gRPC's, the thread pool's).
            spent = time.thread_time() - _began_thread[0]
            _per_gen["thread"][generation] += spent
            _per_gen["collected"][generation] += info["collected"]
            _per_gen["max"][generation] = max(_per_gen["max"][generation], spent)

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

    def _edge(obj, ref) -> str:
        """How `obj` refers to `ref`: an attribute, a key, an index, a local, a closure."""
        if isinstance(obj, dict):
            return next((f"[{k!r}]" for k, v in obj.items() if v is ref), "[key]")
        if isinstance(obj, (list, tuple)):
            return next((f"[{i}]" for i, v in enumerate(obj) if v is ref), "[?]")
        if isinstance(obj, types.FrameType):
            return next((f"local {k}" for k, v in obj.f_locals.items() if v is ref), "frame")
        if isinstance(obj, types.CellType):
            return ".cell_contents"
        try:
            attrs = vars(obj)
        except TypeError:
            attrs = {}
        for name in ("__self__", "__func__", "__closure__", "cr_frame", "gi_frame"):
            try:
                attrs = {**attrs, name: getattr(obj, name)}
            except AttributeError:
                pass
        return next((f".{k}" for k, v in attrs.items() if v is ref), "(internal)")

    def _write_cycle(garbage: list) -> None:
        """One cycle through a sample of each garbage kind (at most 5 kinds): the path of
        references from the object back to itself, within the garbage."""
        ids = {id(o): o for o in garbage}
        seen_kinds: set[str] = set()
        lines = []
        for start in garbage:
            kind = _named(start)
            if kind in seen_kinds or len(seen_kinds) >= 6:
                continue
            seen_kinds.add(kind)
            parents = {id(start): None}
            queue = [start]
            found = None
            while queue and found is None:
                obj = queue.pop(0)
                for ref in gc.get_referents(obj):
                    if ref is start:
                        found = obj
                        break
                    if id(ref) in ids and id(ref) not in parents:
                        parents[id(ref)] = obj
                        queue.append(ref)
            if found is None:
                lines.append(f"{kind}: no cycle back to it (held by one)")
                continue
            path = [found]
            while parents[id(path[-1])] is not None:
                path.append(parents[id(path[-1])])
            path.reverse()  # start ... found
            steps = [_named(path[0])]
            for a, b in zip(path, [*path[1:], start], strict=True):
                steps.append(f"{_edge(a, b)} -> {_named(b)}")
            lines.append(f"{kind}:\n    " + "\n    ".join(steps))
        with open(os.path.join(_out, f"{os.getpid()}.cycles.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")

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
        _per_gen.update({key: list(value) for key, value in _fresh.items()})
        _young_kinds.clear()
        _tallied[:] = [0, 0.0]
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
            _write_cycle(gc.garbage)
            gc.garbage.clear()
            after = _kinds()
            grown = {k: n - _gc["kinds"].get(k, 0) for k, n in after.items()}
            _gc["grown"] = {k: n for k, n in grown.items() if n > 0}
        with open(os.path.join(_out, f"{os.getpid()}.gc.json"), "w") as f:
            json.dump({"seconds": _gc["seconds"], "count": _gc["count"], "garbage": kinds,
                       "grown": _gc.get("grown", {}), "finalised": _finalised,
                       **_per_gen, "frozen": gc.get_freeze_count(),
                       "generations": [len(gc.get_objects(g)) for g in range(3)],
                       "threshold": gc.get_threshold(), "young_kinds": _young_kinds,
                       "tallied": _tallied,
                       "objects": [_gc["objects"], len(gc.get_objects())]}, f)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
