"""What `load/profile_tail.py` watches beside the requests: loop stalls (a 1 ms sleeper's
lateness), garbage collections, and the loop thread's stack while it stalls."""

from __future__ import annotations

import asyncio
import collections
import gc
import sys
import threading
import time
from bisect import bisect_left
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class StallStacks:
    """A thread that, while the loop has not ticked for `threshold_s`, samples the loop
    thread's stack every millisecond: where the loop was busy during its stalls."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s, self.beat = threshold_s, time.perf_counter()
        self.samples: collections.Counter[str] = collections.Counter()
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            if time.perf_counter() - self.beat < self.threshold_s:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            rows = []
            while frame is not None and len(rows) < 14:
                code = frame.f_code
                where = code.co_filename.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
                rows.append(f"{where}:{frame.f_lineno} {code.co_name}")
                frame = frame.f_back
            self.samples[" < ".join(rows)] += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Watch:
    """Loop stalls (a 1 ms sleeper's lateness) and collections, with their times."""

    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []  # (end time, stall s)
        self.gcs: list[tuple[float, float, int]] = []  # (end time, pause s, generation)
        self._gc_start = 0.0
        self._task: asyncio.Task | None = None
        self.stacks: StallStacks | None = None

    def _gc(self, phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        else:
            self.gcs.append((now, now - self._gc_start, info["generation"]))

    async def _sample(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            ended = time.perf_counter()
            if self.stacks is not None:
                self.stacks.beat = ended
            self.stalls.append((ended, max(0.0, ended - began - 0.001)))

    def start(self) -> None:
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def worst_in(self, events: list, began: float, ended: float) -> float:
        """The longest pause among `events` ending within [began, ended]."""
        at = bisect_left(events, (began,))
        worst = 0.0
        while at < len(events) and events[at][0] <= ended:
            worst = max(worst, events[at][1])
            at += 1
        return worst
