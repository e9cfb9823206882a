"""An in-memory event store, so a client can resume a broken SSE stream with Last-Event-ID.

The SDK numbers nothing itself: it asks the store for an id per event it sends and, on a GET
with Last-Event-ID, for every later event of the same stream. Bounded: the oldest events go
first once `capacity` is reached (a resumption that far back finds nothing and starts fresh).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId


class MemoryEventStore(EventStore):
    def __init__(self, capacity: int = 10_000):
        self._events: OrderedDict[str, tuple[StreamId, object]] = OrderedDict()
        self._numbers = itertools.count(1)
        self._capacity = capacity

    async def store_event(self, stream_id: StreamId, message) -> EventId:
        event_id = f"{next(self._numbers)}"
        self._events[event_id] = (stream_id, message)
        while len(self._events) > self._capacity:
            self._events.popitem(last=False)
        return event_id

    async def replay_events_after(self, last_event_id: EventId,
                                  send_callback: EventCallback) -> StreamId | None:
        if last_event_id not in self._events:
            return None
        stream_id, _ = self._events[last_event_id]
        after = False
        for event_id, (stream, message) in list(self._events.items()):
            if after and stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream_id
