"""Reading a server-sent event stream with the arrival time of each event."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class StreamResult:
    response: httpx.Response
    chunks: list[dict[str, Any]]  # the JSON events, in order
    arrivals: list[float]  # monotonic arrival time of each JSON event
    done: bool  # whether the stream ended with `data: [DONE]`


def read_stream(client: httpx.Client, path: str, body: dict[str, Any]) -> StreamResult:
    """POST `body` and read its SSE answer; `data: [DONE]` must be the last event if present."""
    chunks: list[dict[str, Any]] = []
    arrivals: list[float] = []
    done = False
    with client.stream("POST", path, json=body) as response:
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            assert not done, "event after [DONE]"
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                done = True
                continue
            chunks.append(json.loads(data))
            arrivals.append(time.monotonic())
    return StreamResult(response, chunks, arrivals, done)
