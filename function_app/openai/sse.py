"""Watch an answer go by for its usage, changing as little as possible on the way.

`StreamTap` reads a text/event-stream incrementally. Each upstream chunk is forwarded at once up
to its last event boundary (a blank line); only the incomplete tail waits for the next chunk,
which a client could not have used anyway, since SSE dispatches an event at the blank line. A
chunk with no usage object in it is forwarded as the very bytes that came in. A chunk with one
is split into events: the usage is recorded and, when the client did not ask for it, the
usage-only event (`"choices": []`) is dropped. Events may be split across chunks anywhere.

Work and memory are linear and bounded whatever the backend sends: each byte is searched for a
blank line once (a new chunk with the last three bytes of the tail before it, since a blank
line may straddle two chunks), the unfinished event is kept as its pieces and joined once, every
forwarded byte is searched for usage at most three times (the key, the next key, the regex
from the first key on), and the tail (one unfinished event) may not grow past
`max_event_bytes`: past it `check` raises UpstreamEventTooLarge, which ends the stream with an
OpenAI error event (bill.py).

`BodyTap` does the same for a plain JSON answer: chunks pass unchanged while a copy (up to
`limit` bytes) is kept to read the usage from at the end.
"""

from __future__ import annotations

import re

from ..core.errors import UpstreamEventTooLarge
from .usage import USAGE_OBJECT, Usage, find_usage

EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_EVENT = re.compile(rb".*?(?:\r\n\r\n|\n\n|\r\r)", re.S)
_BOUNDARIES = ((b"\r\n\r\n", 4), (b"\n\n", 2), (b"\r\r", 2))
_ENDS = (b"\n\n", b"\r\r")  # a chunk ending so ends at a boundary (\r\n\r\n ends in \n\n)
EDGE = 3  # bytes of a blank line (at most 4) that can precede the chunk completing it
DEFAULT_MAX_EVENT_BYTES = 1 << 20


def last_boundary(data: bytes) -> int:
    """The index just past the last blank line in `data`; 0 when there is none."""
    if data.endswith(_ENDS):  # the usual chunk: whole events; no search needed
        return len(data)
    cut = 0
    for mark, size in _BOUNDARIES:
        at = data.rfind(mark)
        if at >= 0:
            cut = max(cut, at + size)
    return cut


def split_events(data: bytes) -> list[bytes]:
    """`data` cut after each blank line; bytes after the last one (if any) come last."""
    events, start = [], 0
    for match in _EVENT.finditer(data):
        events.append(match.group())
        start = match.end()
    if start < len(data):
        events.append(data[start:])
    return events


class StreamTap:
    """Feed it upstream chunks; forward what `feed` and finally `flush` return. `scanned`
    counts the bytes searched for a blank line (linear in the bytes fed, whatever their
    framing)."""

    def __init__(self, strip_usage_event: bool,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self.strip = strip_usage_event
        self.max_event_bytes = max_event_bytes
        self.usage: Usage | None = None
        self.scanned = 0
        # The unfinished event, as the pieces it came in (joined once, when it ends), its size,
        # and its last bytes, where a blank line may begin that the next chunk completes.
        self._tail: list[bytes] = []
        self._held = 0
        self._edge = b""
        # Set once an event went past the cap; `check` raises it (the per-chunk loop reads it
        # itself: a call less per chunk, openai/tapped.py).
        self.too_large: UpstreamEventTooLarge | None = None

    @property
    def pending(self) -> int:
        """Bytes held: the unfinished event waiting for its blank line."""
        return self._held

    def check(self) -> None:
        """Raise UpstreamEventTooLarge once an event went past the cap (after `feed` returned
        the complete events before it, which the client should still get)."""
        if self.too_large is not None:
            raise self.too_large

    def feed(self, chunk: bytes) -> bytes:
        """The complete events `chunk` finishes (bytes up to its last blank line). When the
        unfinished event grows past the cap it is dropped, and `check` raises from then on."""
        if self._tail or self.too_large is not None:
            data = self._completed_tail(chunk)
        else:
            self.scanned += len(chunk)
            if chunk.endswith(_ENDS):  # last_boundary's usual case, inline: a call less a chunk
                data = chunk
            else:
                cut = last_boundary(chunk)
                data = chunk if cut == len(chunk) else self._keep(chunk, cut)
        # The usage object's key by a plain search first, several times cheaper a chunk than the
        # regex (docs/perf/pass13-streams.md): a chunk without the key, or whose only key is
        # `"usage":null` (every chunk of a stream that asked for its usage), holds no usage
        # object; another key cannot begin before the 12 bytes of that one end (nor at all
        # when fewer than 7 bytes follow them: the usual chunk, which ends `null}` + blank line).
        at = data.find(b'"usage"')
        if at < 0 or (data.startswith(b":null", at + 7) and (
                at + 19 > len(data) or data.find(b'"usage"', at + 12) < 0)) \
                or USAGE_OBJECT.search(data, at) is None:
            return data
        return b"".join(self._events(split_events(data)))

    def _keep(self, chunk: bytes, cut: int) -> bytes:
        """Hold the bytes of `chunk` after `cut` as the tail; the bytes before it."""
        rest = chunk[cut:]
        self._tail, self._held, self._edge = [rest], len(rest), rest[-EDGE:]
        if self._held > self.max_event_bytes:
            self._bounded()
        return chunk[:cut]

    def _completed_tail(self, chunk: bytes) -> bytes:
        """The tail and `chunk` up to its last blank line, if it has one; else b"" (and
        `chunk` joins the tail)."""
        if self.too_large is not None:
            return b""
        probe = self._edge + chunk
        self.scanned += len(probe)
        # A blank line cannot end inside the edge (it would have ended the tail already), so
        # a cut, if any, falls inside `chunk`.
        cut = last_boundary(probe) - len(self._edge)
        if cut <= 0:
            self._tail.append(chunk)
            self._held += len(chunk)
            self._edge = probe[-EDGE:]
            if self._held > self.max_event_bytes:
                self._bounded()
            return b""
        self._tail.append(chunk[:cut])
        data = b"".join(self._tail)
        self._tail, self._held = [], 0
        if cut < len(chunk):
            self._keep(chunk, cut)
        return data

    def _bounded(self) -> None:
        """Past the cap: drop the tail at once and remember why the stream must end."""
        self._tail, self._held = [], 0
        self.too_large = UpstreamEventTooLarge(
            f"The backend streamed an event over {self.max_event_bytes} bytes without "
            "ending it; the stream was ended.")

    def flush(self) -> bytes:
        """The unterminated tail left when the stream ends (normally nothing)."""
        tail = b"".join(self._tail)
        self._tail, self._held = [], 0
        if not tail or USAGE_OBJECT.search(tail) is None:
            return tail
        return b"".join(self._events([tail]))

    def _events(self, events: list[bytes]) -> list[bytes]:
        kept = []
        for event in events:
            if USAGE_OBJECT.search(event) is not None:
                self.usage = find_usage(event) or self.usage
                if self.strip and EMPTY_CHOICES.search(event) is not None:
                    continue
            kept.append(event)
        return kept


class BodyTap:
    """Keeps a copy of a plain answer (up to `limit` bytes) to read its usage at the end."""

    too_large = None  # a plain answer has no event to outgrow (StreamTap.too_large)

    def __init__(self, limit: int):
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def check(self) -> None:
        """A plain answer has no event to outgrow: nothing to raise."""

    def feed(self, chunk: bytes) -> bytes:
        self._size += len(chunk)
        if self._size <= self._limit:
            self._chunks.append(chunk)
        return chunk

    def flush(self) -> bytes:
        return b""

    @property
    def usage(self) -> Usage | None:
        """The usage of the whole answer; None when it was larger than `limit`."""
        if self._size > self._limit:
            return None
        return find_usage(b"".join(self._chunks))
