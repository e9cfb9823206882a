"""Watch a Messages stream go by for its usage, forwarding every byte unchanged.

The framing is openai/sse.py's StreamTap (each chunk searched once for an event boundary, the
unfinished event held as pieces, at most SSE_MAX_EVENT_BYTES of it); only complete events that
mention "usage" (message_start, message_delta) are decoded, and nothing is ever removed.
"""

from __future__ import annotations

from ..openai.early import parse_event
from ..openai.sse import DEFAULT_MAX_EVENT_BYTES, StreamTap
from .usage import StreamUsage

USAGE_MARK = b'"usage"'


class MessageTap(StreamTap):
    """Feed it upstream chunks; forward what `feed` and finally `flush` return; `check` raises
    once an event outgrew the cap. `strip` is accepted for the Wire interface and ignored."""

    def __init__(self, strip: bool = False, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        super().__init__(False, max_event_bytes)
        self._seen = StreamUsage()

    def _events(self, events: list[bytes]) -> list[bytes]:
        for event in events:
            self._read(event)
        self.usage = self._seen.usage
        return events

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
