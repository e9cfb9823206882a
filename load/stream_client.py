"""The streams benchmark's client: N streamed chat completions from one process, timed.

Two implementations of the same measurement, chosen by `--client` in load/bench_streams.py:

- `raw` (the default): one asyncio protocol per stream on uvloop with httptools' response parser.
  A chunk's arrival is timed in the protocol's callback, with no task woken per chunk; the
  benchmark's client then costs a few microseconds of CPU per chunk, so on this 2-core machine
  the client does not take the CPU the gateway is measured with (issue #26).
- `aiohttp`: aiohttp's client, as the benchmark used before (kept to compare the clients' CPU).

Both record, per stream: the time to the first data event (TTFT, from sending the request), the
gaps between successive data events (a network read that holds `data:`), and whether the answer
was a 200 that ended with `data: [DONE]`. Per process they also report their CPU time and the lag
of their own event loop (a 10 ms ticker: how late it woke), so a report shows when the client,
not the gateway, was behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

import httptools

TICK_S = 0.01


class _Stream(asyncio.Protocol):
    """One streamed request over its own connection; `done` resolves to its record."""

    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request = request
        self.done = done
        self.parser = httptools.HttpResponseParser(self)
        self.start = 0.0
        self.last: float | None = None
        self.ttft: float | None = None
        self.gaps: list[float] = []
        self.tail = b""
        self.complete = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.start = time.perf_counter()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if b"data:" in data:
            if self.last is None:
                self.ttft = (now - self.start) * 1000
            else:
                self.gaps.append((now - self.last) * 1000)
            self.last = now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.tail = (self.tail + body)[-64:]

    def on_message_complete(self) -> None:
        self.complete = True
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            ok = (self.complete and self.parser.get_status_code() == 200
                  and b"data: [DONE]" in self.tail)
            self.done.set_result({"ttft": self.ttft, "gaps": self.gaps, "ok": ok})


def _request(url: str, body: dict) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = (f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
            "connection: close\r\n\r\n").encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head + payload


async def raw_stream(url: str, body: dict, delay: float) -> dict:
    """One stream over a raw protocol (see the module's docstring)."""
    await asyncio.sleep(delay)
    host, port, request = _request(url, body)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    try:
        await loop.create_connection(lambda: _Stream(request, done), host, port)
        return await done
    except OSError:
        return {"ttft": None, "gaps": [], "ok": False}


async def aiohttp_streams(url: str, body: dict, delays: list[float]) -> list[dict]:
    import aiohttp

    async def one(session, delay: float) -> dict:
        await asyncio.sleep(delay)
        start = time.perf_counter()
        last = None
        ttft, gaps, tail = None, [], b""
        try:
            async with session.post(url, json=body) as response:
                async for chunk in response.content.iter_any():
                    now = time.perf_counter()
                    if b"data:" in chunk:
                        if last is None:
                            ttft = (now - start) * 1000
                        else:
                            gaps.append((now - last) * 1000)
                        last = now
                    tail = (tail + chunk)[-64:]
                ok = response.status == 200 and b"data: [DONE]" in tail
        except (TimeoutError, aiohttp.ClientError, OSError):
            ok = False
        return {"ttft": ttft, "gaps": gaps, "ok": ok}

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(*(one(session, d) for d in delays))


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    """How late the loop wakes a 10 ms sleep, in ms: the client's own queueing."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        lags.append((loop.time() - due) * 1000)


async def run_streams(kind: str, url: str, body: dict, delays: list[float]) -> dict:
    """Every stream of this process and its own CPU seconds and loop lags (ms)."""
    lags: list[float] = []
    stop = asyncio.Event()
    ticking = asyncio.ensure_future(_ticker(lags, stop))
    cpu = time.process_time()
    if kind == "raw":
        results = await asyncio.gather(*(raw_stream(url, body, d) for d in delays))
    else:
        results = await aiohttp_streams(url, body, delays)
    cpu = time.process_time() - cpu
    stop.set()
    await ticking
    return {"results": results, "cpu_s": cpu, "lags": lags}
