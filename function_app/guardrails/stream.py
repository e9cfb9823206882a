"""A streamed answer released window by window, each window checked before any of it is sent.

Events that carry text (a choice's `delta.content`, or `text` for completions) are held until
they add up to `window_chars` characters (or the stream ends); the window is then checked, with
up to `window_chars` of the text already released before it as context, and released as the
same events (rewritten only when PII is redacted: the window's text then rides in its first
event). Events without text pass at once when nothing is held, or queue behind the held ones,
so the order never changes.

On a violation nothing of the window is sent: the stream ends with a final chunk whose choices
have finish_reason "content_filter", then `data: [DONE]`, and the upstream is closed. A check
that cannot run releases the window (fail open) or ends the stream with OpenAI's error event
(fail closed). At most `window_chars` characters plus one event are ever held, and, when the
policy sets `window_ms`, a window is released after that long even if shorter, so a slow
model's first words are not held back for long.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry.trace import Span, Tracer

from ..core.tasks import stop
from ..openai.midstream import error_event
from . import pii
from .counts import CheckCounts
from .errors import GuardrailUnavailable
from .policy import Policy
from .safety import ContentSafety, SafetyUnavailable
from .spans import child_span
from .verdict import harmful
from .wires import CHAT, ChatWire, MessagesWire, ResponsesWire, reframed

Wire = ChatWire | ResponsesWire | MessagesWire

DONE = b"data: [DONE]"
FILTER, UNAVAILABLE = object(), object()  # verdicts of a window besides "release"
END, DUE = object(), object()  # the body ended; the held window has waited window_ms
_MARKS = (b"\r\n\r\n", b"\n\n", b"\r\r")


def next_boundary(data: bytes, start: int) -> int:
    """The index just past the first blank line at or after `start`; -1 when there is none."""
    best = -1
    for mark in _MARKS:
        at = data.find(mark, start)
        if at >= 0 and (best < 0 or at + len(mark) < best):
            best = at + len(mark)
    return best


def payload_of(event: bytes) -> Any:
    """The decoded JSON of an event's data lines; None for [DONE], comments or non-JSON."""
    lines = [ln[5:].strip() for ln in event.splitlines() if ln.startswith(b"data:")]
    if not lines or lines == [b"[DONE]"]:
        return None
    try:
        return json.loads(b"\n".join(lines))
    except ValueError:
        return None


class WindowedStream:
    def __init__(self, policy: Policy, safety: ContentSafety | None, counts: CheckCounts,
                 tracer: Tracer | None = None, parent: Span | None = None,
                 wire: Wire = CHAT):
        self.policy, self.safety, self.counts, self.wire = policy, safety, counts, wire
        self.tracer, self.parent = tracer, parent
        self.held: list[tuple[bytes, Any, str]] = []  # (event, payload, text)
        self.held_chars = 0
        self.held_since = 0.0  # loop time when the held window began
        self.released = ""  # the tail of what was released: context for the next window
        self.head: dict[str, Any] = {}  # what the wire needs to end the stream its way
        self.windows = 0
        self.finding = ""  # what the last window's check found (kinds, categories; no text)

    async def run(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The checked stream. A task reads `body` one chunk ahead, so a window held longer
        than the policy's `window_ms` is checked and released while the model is still
        writing; closing this stream stops that task, then closes `body`."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        pump = asyncio.get_running_loop().create_task(_pump(body, queue))
        tail = b""
        try:
            while (item := await self._next(queue)) is not END:
                if isinstance(item, Exception):
                    raise item
                if item is DUE:
                    outs = await self._release()
                else:
                    outs, tail = await self._chunk(tail + item)
                for out in outs:
                    if out is None:
                        return
                    yield out
            outs = [*(await self._event(tail, last=True) if tail else []),
                    *await self._release()]
            for out in outs:
                if out is None:
                    return
                yield out
        finally:
            await stop(pump)
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()

    async def _next(self, queue: asyncio.Queue) -> Any:
        """The next chunk (or END, or the body's exception), or DUE when the held window has
        waited `window_ms`."""
        if not self.held or not self.policy.window_ms:
            return await queue.get()
        wait = self.held_since + self.policy.window_ms / 1000 - asyncio.get_running_loop().time()
        if wait <= 0:
            return DUE
        try:
            return await asyncio.wait_for(queue.get(), wait)
        except TimeoutError:
            return DUE

    async def _chunk(self, data: bytes) -> tuple[list[bytes | None], bytes]:
        """What to send for the complete events in `data`, and the incomplete tail."""
        outs: list[bytes | None] = []
        start = 0
        while (end := next_boundary(data, start)) >= 0:
            outs += await self._event(data[start:end])
            start = end
            if outs and outs[-1] is None:
                break
        return outs, data[start:]

    async def _event(self, event: bytes, last: bool = False) -> list[bytes | None]:
        """What to send now for one event; a None ends the stream after what precedes it."""
        if event.startswith(DONE) or event.strip() == DONE:
            return [*await self._release(), event]
        payload = payload_of(event)
        self.wire.remember(payload, self.head)
        text = self.wire.text(payload)
        if not text and not self.held:
            return [event]
        if not self.held:
            self.held_since = asyncio.get_running_loop().time()
        self.held.append((event, payload, text))
        self.held_chars += len(text)
        if self.held_chars >= self.policy.window_chars or last:
            return await self._release()
        return []

    async def _release(self) -> list[bytes | None]:
        """Check the held window; its events (or the content-filter ending, or the error)."""
        held, self.held, self.held_chars = self.held, [], 0
        window = "".join(text for _, _, text in held)
        events: list[bytes | None] = [event for event, _, _ in held]
        if not window:
            return events
        self.windows += 1
        with child_span(self.tracer, self.parent, "guardrails.output.window",
                        {"gateway.guardrails.window": self.windows}) as span:
            self.finding = ""
            verdict = await self._check(window)
            if span is not None and span.is_recording() and self.finding:
                span.set_attribute("gateway.guardrails.finding", self.finding)
        if verdict is FILTER:
            return [*self.wire.ending(self.head), None]
        if verdict is UNAVAILABLE:
            return [error_event(GuardrailUnavailable()), None]
        if isinstance(verdict, str):  # the window's redacted text
            events, window = list(_rewritten(held, verdict, self.wire)), verdict
        self.released = (self.released + window)[-self.policy.window_chars:]
        return events

    async def _check(self, window: str) -> object:
        """None (release as is), FILTER, UNAVAILABLE or the window's redacted text."""
        redacted = self._pii(window)
        if redacted is FILTER or "content_safety" not in self.policy.output:
            return redacted
        try:
            if self.safety is None:
                raise SafetyUnavailable("CONTENT_SAFETY_ENDPOINT is not set")
            found = await harmful(self.safety, self.policy, self.released + window)
        except SafetyUnavailable:
            self.counts.check("output", "content_safety", "unavailable_" + self.policy.fail)
            return redacted if self.policy.fails_open else UNAVAILABLE
        action = self.policy.output["content_safety"]
        self.counts.check("output", "content_safety", action if found else "pass")
        if found:
            self.finding = f"content_safety={found[0]}:{found[1]}"
        return FILTER if found and action == "block" else redacted

    def _pii(self, window: str) -> object:
        action = self.policy.output.get("pii")
        if action is None:
            return None
        new, found = pii.redact(window, self.policy.detectors)
        self.counts.pii(found)
        if found:
            self.finding = "pii=" + ",".join(sorted(found))
        self.counts.check("output", "pii", action if found else "pass")
        if found and action == "block":
            return FILTER
        return new if found and action == "redact" else None

async def _pump(body: AsyncIterator[bytes], queue: asyncio.Queue) -> None:
    """Move `body`'s chunks into `queue`, then END, or the exception the body raised."""
    try:
        async for chunk in body:
            await queue.put(chunk)
        await queue.put(END)
    except Exception as exc:  # handed to the reader, which raises it where it reads
        await queue.put(exc)


def _rewritten(held: list[tuple[bytes, Any, str]], text: str, wire: Wire) -> list[bytes]:
    """The window's events with its text replaced by `text`: all of it in the first text event,
    the others emptied (a client concatenates deltas, so it reads exactly `text`)."""
    out, placed = [], False
    for event, payload, own in held:
        if not own:
            out.append(event)
            continue
        wire.set_text(payload, "" if placed else text)
        placed = True
        out.append(reframed(event, payload))
    return out
