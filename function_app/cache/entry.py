"""A stored answer and its wire form for shared tiers.

`events` is set for an answer stored from a server-sent event stream: the lengths of its events,
in order, so a replay can send them one by one in the upstream's own framing.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from ..http.headers import Headers

OVERHEAD = 256  # bytes charged per entry on top of body and headers (object, key, LRU links)
_LEN = struct.Struct(">I")
VERSION = 1
VARIANTS = 0  # the status of a marker entry: the answer varies on the fields in `vary`


class EntryFormatError(ValueError):
    """Bytes from a shared tier that are not an entry of this version (treated as a miss)."""


@dataclass(frozen=True)
class CacheEntry:
    status: int
    headers: Headers
    body: bytes
    stored_at: float  # wall-clock seconds: shared tiers compare it across instances
    ttl: float  # freshness lifetime in seconds, counted from the answer's own age
    initial_age: float = 0.0
    vary: tuple[tuple[str, str], ...] = ()  # request header values the answer was chosen by
    events: tuple[int, ...] | None = None

    @property
    def is_variants_marker(self) -> bool:
        return self.status == VARIANTS

    def age(self, now: float) -> float:
        return self.initial_age + max(0.0, now - self.stored_at)

    def expires_at(self) -> float:
        return self.stored_at + self.ttl - self.initial_age

    def remaining(self, now: float) -> float:
        return self.ttl - self.age(now)

    @property
    def size(self) -> int:
        """Bytes this entry is charged in a byte-bounded tier."""
        head = sum(len(k) + len(v) for k, v in self.headers)
        return len(self.body) + head + sum(len(k) + len(v) for k, v in self.vary) + OVERHEAD

    def event_chunks(self) -> list[bytes]:
        """The body cut into its stored events (the whole body when it was not a stream)."""
        if self.events is None:
            return [self.body]
        chunks, start = [], 0
        for length in self.events:
            chunks.append(self.body[start:start + length])
            start += length
        return chunks

    def to_bytes(self) -> bytes:
        meta = json.dumps({"v": VERSION, "s": self.status, "h": list(self.headers),
                           "t": self.stored_at, "ttl": self.ttl, "a": self.initial_age,
                           "vary": self.vary, "e": self.events}, separators=(",", ":")).encode()
        return _LEN.pack(len(meta)) + meta + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> CacheEntry:
        try:
            (length,) = _LEN.unpack_from(data)
            meta = json.loads(data[4:4 + length])
            if meta.get("v") != VERSION:
                raise EntryFormatError("another entry version")
            events = meta["e"]
            return cls(int(meta["s"]), Headers((str(k), str(v)) for k, v in meta["h"]),
                       bytes(data[4 + length:]), float(meta["t"]), float(meta["ttl"]),
                       float(meta["a"]), tuple((str(k), str(v)) for k, v in meta["vary"]),
                       tuple(int(n) for n in events) if events is not None else None)
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise EntryFormatError(str(exc)) from None
