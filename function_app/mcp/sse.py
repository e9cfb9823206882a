"""Server-sent events, parsed incrementally with a cap on one event's size.

The MCP relay passes a server's stream on event by event: an event is complete at its blank
line, and only then is it looked at (tools filtered) and sent on. Memory per stream is bounded by
`max_event_bytes`: an event that grows past it ends the stream (EventTooLarge) instead of being
buffered without end.
"""

from __future__ import annotations

from dataclasses import dataclass


class EventTooLarge(Exception):
    """One event passed the size cap before its end."""


@dataclass
class Event:
    raw: bytes  # the event as received, without its terminating blank line
    fields: list[tuple[str, str]]

    @property
    def data(self) -> str | None:
        lines = [value for name, value in self.fields if name == "data"]
        return "\n".join(lines) if lines else None

    def with_data(self, data: str) -> bytes:
        """The event re-encoded with `data` in place of its data lines (ids kept)."""
        out, done = [], False
        for name, value in self.fields:
            if name != "data":
                out.append(f"{name}: {value}" if name else f":{value}")
            elif not done:
                out.extend(f"data: {line}" for line in data.split("\n"))
                done = True
        return ("\n".join(out) + "\n\n").encode()


class SseParser:
    def __init__(self, max_event_bytes: int):
        self._cap = max_event_bytes
        self._buffer = bytearray()  # line endings already made \n
        self._held_cr = False  # the last chunk ended in \r: maybe half of a \r\n

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by `chunk`, in order. Only the new bytes are normalised and
        searched, so a server sending one byte at a time costs time linear in what it sends."""
        if self._held_cr:
            chunk = b"\r" + chunk
        self._held_cr = chunk.endswith(b"\r")
        if self._held_cr:
            chunk = chunk[:-1]
        start = max(0, len(self._buffer) - 1)
        self._buffer += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        while (end := self._buffer.find(b"\n\n", start)) >= 0:
            raw = bytes(self._buffer[:end])
            del self._buffer[:end + 2]
            start = 0
            if raw.strip(b"\n"):
                events.append(_event(raw.lstrip(b"\n")))
        if len(self._buffer) > self._cap:
            raise EventTooLarge()
        return events

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished event are held (the stream ended mid-event)."""
        return bool(self._buffer.strip())


def _event(raw: bytes) -> Event:
    fields = []
    for line in raw.decode("utf-8", "replace").split("\n"):
        name, sep, value = line.partition(":")
        if not sep:
            fields.append((name, ""))
            continue
        fields.append((name, value[1:] if value.startswith(" ") else value))
    return Event(raw, fields)
