"""The host-worker pipe: length-prefixed JSON frames over a local (Unix) stream socket.

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON. The host sends
`{"id", "type", "body"}` where type names a worker-library handler (`worker_init_request`, ...);
the worker answers `{"id", "body"}` with the response message in wire form, or `{"id", "error"}`
when the handler itself raised. Frames may interleave: invocations run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at end of stream."""
    try:
        head = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes is over the limit")
        return json.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None
