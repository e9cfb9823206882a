"""Timer triggers: each timer function runs on its schedule through an invocation request.

Schedules are NCRONTAB expressions as the Functions host reads them (six fields: second minute
hour day month day-of-week; `*`, `a-b`, `*/n`, `a-b/n`, lists; times in UTC) or a TimeSpan
`hh:mm:ss` interval. A schedule naming app settings, `%NAME%`, is resolved from the app's
environment as the host resolves binding expressions; one that does not resolve is an error and
the function is not scheduled. `runOnStartup` runs the function once when the worker is ready.
One run of a function at a time: a run still going when the next is due makes that one late, flagged
`IsPastDue`, as the host does. The pure part (`parse_schedule`, `next_after`) takes no clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .supervisor import Supervisor
from .workerproc import WorkerError

log = logging.getLogger("funchost")
RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
NAMES = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8,
         "sep": 9, "oct": 10, "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3,
         "thu": 4, "fri": 5, "sat": 6}


@dataclass(frozen=True)
class Schedule:
    fields: tuple[frozenset[int], ...] = ()
    interval_s: float = 0.0


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            start, end = low, high
        else:
            first, _, last = span.partition("-")
            start = int(NAMES.get(first, first))
            end = int(NAMES.get(last, last)) if last else (high if step_text else start)
        if not (low <= start <= high and low <= end <= high) or step < 1:
            raise ValueError(f"schedule field {text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def parse_schedule(text: str) -> Schedule:
    """An NCRONTAB expression (six fields) or an `hh:mm:ss` interval."""
    text = text.strip()
    interval = re.fullmatch(r"(\d+):(\d{2}):(\d{2})", text)
    if interval:
        hours, minutes, seconds = map(int, interval.groups())
        total = hours * 3600 + minutes * 60 + seconds
        if total <= 0:
            raise ValueError(f"timer interval {text!r} must be positive")
        return Schedule(interval_s=float(total))
    parts = text.split()
    if len(parts) != 6:
        raise ValueError(f"schedule {text!r} needs six fields (second minute hour day month "
                         "day-of-week)")
    fields = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, RANGES, strict=True)]
    if 7 in fields[5]:
        fields[5] = fields[5] | {0}
    return Schedule(fields=tuple(fields))


def next_after(schedule: Schedule, moment: datetime) -> datetime:
    """The first time strictly after `moment` that the schedule names."""
    if schedule.interval_s:
        return moment + timedelta(seconds=schedule.interval_s)
    sec, minute, hour, day, month, weekday = schedule.fields
    t = moment.replace(microsecond=0) + timedelta(seconds=1)
    limit = moment + timedelta(days=366 * 5)
    while t < limit:
        if t.month not in month:
            t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
        elif t.day not in day or (t.isoweekday() % 7) not in weekday:
            t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
        elif t.hour not in hour:
            t = t.replace(minute=0, second=0) + timedelta(hours=1)
        elif t.minute not in minute:
            t = t.replace(second=0) + timedelta(minutes=1)
        elif t.second not in sec:
            t += timedelta(seconds=1)
        else:
            return t
    raise ValueError("the schedule never fires")


def resolve_settings(text: str, environ: dict[str, str]) -> str:
    """`text` with each `%NAME%` replaced by that app setting; ValueError names a missing one."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"'%{name}%' does not resolve to a value (no app setting {name})")
        return environ[name]

    return re.sub(r"%([^%]+)%", value, text)


def timer_binding(metadata: dict) -> dict | None:
    for raw in metadata.get("raw_bindings", []):
        binding = json.loads(raw) if isinstance(raw, str) else raw
        if binding.get("type") == "timerTrigger":
            return binding
    return None


def disabled(name: str, environ=os.environ) -> bool:
    """The app setting `AzureWebJobs.<name>.Disabled` (true or 1), which the Functions host
    honours to keep a function from running."""
    return environ.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1")


class TimerRunner:
    """Runs the current worker's timer functions; follows the worker across restarts."""

    def __init__(self, supervisor: Supervisor, now=lambda: datetime.now(UTC)):
        self.supervisor = supervisor
        self.now = now

    async def run(self) -> None:
        while True:
            await self.supervisor.ready.wait()
            worker = self.supervisor.current
            timers = [(m, b) for m in self.supervisor.others
                      if (b := timer_binding(m)) and not disabled(m["name"])]
            tasks = [asyncio.create_task(self._one(worker, m, b)) for m, b in timers]
            try:
                await self.supervisor.changed.wait()
            finally:
                for task in tasks:
                    task.cancel()

    async def _one(self, worker, metadata: dict, binding: dict) -> None:
        name = metadata["name"]
        try:
            text = resolve_settings(str(binding.get("schedule", "")), worker.environ)
            schedule = parse_schedule(text)
        except ValueError as exc:
            log.error("timer %s not scheduled: %s", name, exc)
            return
        last = self.now()
        due = last if binding.get("runOnStartup") else next_after(schedule, last)
        while True:
            await asyncio.sleep(max(0.0, (due - self.now()).total_seconds()))
            started = self.now()
            status = {"Last": last.isoformat(), "Next": next_after(schedule, due).isoformat(),
                      "LastUpdated": started.isoformat()}
            payload = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status,
                       "IsPastDue": (started - due).total_seconds() > 1.0}
            body = {"invocation_id": str(uuid.uuid4()), "function_id": metadata["function_id"],
                    "input_data": [{"name": binding.get("name", "timer"),
                                    "data": {"json": json.dumps(payload)}}]}
            try:
                result = await worker.call("invocation_request", body)
                if (result.get("result") or {}).get("status") != 1:
                    log.error("timer %s failed: %s", name,
                              (result["result"].get("exception") or {}).get("message", ""))
            except WorkerError as exc:
                log.error("timer %s not run: %s", name, exc)
                return
            last, due = due, next_after(schedule, due)
            if due < self.now():  # a run overran: the next is due now, and late
                due = self.now()
