"""Watch an answer go by for its usage, changing as little as possible on the way.

`StreamTap` reads a text/event-stream incrementally. Each upstream chunk is forwarded at once up
to its last event boundary (a blank line); only the incomplete tail waits for the next chunk,
which a client could not have used anyway, since SSE dispatches an event at the blank line. A
chunk with no usage object in it is forwarded as the very bytes that came in. A chunk with one
is split into events: the usage is recorded and, when the client did not ask for it, the
usage-only event (`"choices": []`) is dropped. Events may be split across chunks anywhere.

`BodyTap` does the same for a plain JSON answer: chunks pass unchanged while a copy (up to
`limit` bytes) is kept to read the usage from at the end.
"""

from __future__ import annotations

import re

from .usage import USAGE_OBJECT, Usage, find_usage

EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_EVENT = re.compile(rb".*?(?:\r\n\r\n|\n\n|\r\r)", re.S)
_BOUNDARIES = ((b"\r\n\r\n", 4), (b"\n\n", 2), (b"\r\r", 2))


def last_boundary(data: bytes) -> int:
    """The index just past the last blank line in `data`; 0 when there is none."""
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
    """Feed it upstream chunks; forward what `feed` and finally `flush` return."""

    def __init__(self, strip_usage_event: bool):
        self.strip = strip_usage_event
        self.usage: Usage | None = None
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._tail + chunk if self._tail else chunk
        cut = last_boundary(data)
        if cut < len(data):
            data, self._tail = data[:cut], data[cut:]
        else:
            self._tail = b""
        if not data or USAGE_OBJECT.search(data) is None:
            return data
        return b"".join(self._events(split_events(data)))

    def flush(self) -> bytes:
        """The unterminated tail left when the stream ends (normally nothing)."""
        tail, self._tail = self._tail, b""
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

    def __init__(self, limit: int):
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

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
