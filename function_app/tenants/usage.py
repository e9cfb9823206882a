"""Per-instance usage counts per key and day, handed to storage at most once a minute per key.

The request path only adds to memory (`record`); `due` takes the counts of keys whose last
hand-over is at least `every_s` old (all of them when `force`), and those go to
`KeyStore.add_usage` as deltas. This is also how "last used" reaches storage: never per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from .budgets import DAY, period_id
from .records import UsageRecord

MAX_PENDING = 100_000  # (key, day) pairs held between flushes; beyond that, counts are dropped


@dataclass
class _Pending:
    requests: int = 0
    tokens: float = 0.0
    spend: float = 0.0
    last_used: float = 0.0


class UsageRecorder:
    def __init__(self, every_s: float = 60.0) -> None:
        self._every = every_s
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self._flushed: dict[str, float] = {}  # prefix -> last hand-over
        self.dropped = 0

    def record(self, tenant: str, prefix: str, now: float, *, requests: int = 0,
               tokens: float = 0.0, spend: float = 0.0) -> None:
        key = (tenant, prefix, period_id(DAY, now))
        item = self._pending.get(key)
        if item is None:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                return
            item = self._pending[key] = _Pending()
        item.requests += requests
        item.tokens += tokens
        item.spend += spend
        item.last_used = max(item.last_used, now)

    def due(self, now: float, force: bool = False) -> list[UsageRecord]:
        """Deltas to store now; they leave the recorder (put them back with `restore`)."""
        out = []
        for key in list(self._pending):
            tenant, prefix, day = key
            if not force and now - self._flushed.get(prefix, 0.0) < self._every:
                continue
            item = self._pending.pop(key)
            self._flushed[prefix] = now
            out.append(UsageRecord(tenant, prefix, day, item.requests, round(item.tokens),
                                   item.spend, item.last_used))
        return out

    def restore(self, delta: UsageRecord) -> None:
        """Put back a delta that could not be stored, to try again at the next hand-over."""
        key = (delta.tenant, delta.prefix, delta.day)
        item = self._pending.setdefault(key, _Pending())
        item.requests += delta.requests
        item.tokens += delta.tokens
        item.spend += delta.spend
        item.last_used = max(item.last_used, delta.last_used)
