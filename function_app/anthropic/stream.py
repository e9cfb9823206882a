"""Watch a Messages stream go by for its usage, forwarding every byte unchanged.

Built on openai/sse.py's interface: each chunk goes on at once up to its last event boundary
(the incomplete tail waits for the next chunk, which the client could not have used before
either); only complete events that mention "usage" (message_start, message_delta) are decoded.
"""

from __future__ import annotations

from ..openai.early import parse_event
from ..openai.sse import last_boundary, split_events
from ..openai.usage import Usage
from .usage import StreamUsage

USAGE_MARK = b'"usage"'


class MessageTap:
    """Feed it upstream chunks; forward what `feed` and finally `flush` return. `strip` is
    accepted for the Wire interface and ignored: nothing is ever removed."""

    def __init__(self, strip: bool = False):
        self._seen = StreamUsage()
        self._tail = b""

    @property
    def usage(self) -> Usage | None:
        return self._seen.usage

    def feed(self, chunk: bytes) -> bytes:
        data = self._tail + chunk if self._tail else chunk
        cut = last_boundary(data)
        data, self._tail = data[:cut], data[cut:]
        if USAGE_MARK in data:
            for event in split_events(data):
                self._read(event)
        return data

    def flush(self) -> bytes:
        tail, self._tail = self._tail, b""
        if USAGE_MARK in tail:
            self._read(tail)
        return tail

    def _read(self, event: bytes) -> None:
        if USAGE_MARK not in event:
            return
        name, data = parse_event(event)
        if not isinstance(data, dict):
            return
        if name == "message_start" and isinstance(data.get("message"), dict):
            self._seen.start(data["message"].get("usage"))
        elif name == "message_delta":
            self._seen.delta(data.get("usage"))
