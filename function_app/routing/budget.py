"""The retry budget: retries may add at most `ratio` of the requests seen over a sliding
window, plus a floor of `min_per_s` per second, so retries never multiply an outage.

Counts live in one-second buckets over `window_s` seconds; time is passed in.
"""

from __future__ import annotations

import math
from collections import deque


class RetryBudget:
    def __init__(self, ratio: float = 0.2, min_per_s: float = 3.0, window_s: float = 10.0):
        self.ratio, self.min_per_s, self.window_s = ratio, min_per_s, window_s
        self._buckets: deque[list[float]] = deque()  # [second, requests, retries]

    def _bucket(self, now: float) -> list[float]:
        second = math.floor(now)
        while self._buckets and self._buckets[0][0] <= second - self.window_s:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        return self._buckets[-1]

    def record_request(self, now: float) -> None:
        buckets = self._buckets
        if buckets:  # `_bucket`, inline when it is the current second's and none has expired
            last = buckets[-1]
            if last[0] == math.floor(now) and buckets[0][0] > last[0] - self.window_s:
                last[1] += 1
                return
        self._bucket(now)[1] += 1

    def allowance(self, now: float) -> float:
        """How many retries the window allows in all."""
        self._bucket(now)
        requests = sum(b[1] for b in self._buckets)
        return self.min_per_s * self.window_s + self.ratio * requests

    def try_spend(self, now: float) -> bool:
        """Take one retry if the window has room for it."""
        bucket = self._bucket(now)
        if sum(b[2] for b in self._buckets) + 1 > self.allowance(now):
            return False
        bucket[2] += 1
        return True
