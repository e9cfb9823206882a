"""A bounded closed-loop load driver: workers spread over several gateway URLs for a fixed time."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

BODY = b'{"prompt": "drive"}'


@dataclass
class Run:
    statuses: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)  # error.code of non-200 answers
    first_at: float = 0.0
    last_at: float = 0.0
    missing_headers: int = 0

    @property
    def elapsed(self) -> float:
        return self.last_at - self.first_at

    @property
    def admitted(self) -> int:
        return self.statuses[200]


async def drive(urls: list[str], seconds: float, workers: int, *, check_headers: bool = False,
                pause_s: float = 0.0) -> Run:
    """POST to `urls` round-robin from `workers` loops for `seconds`; never more than that."""
    run = Run()
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=0)) as session:
        async def worker(index: int) -> None:
            sent = index
            while time.monotonic() < deadline:
                url = urls[sent % len(urls)]
                sent += 1
                await _one(session, url, run, check_headers)
                if pause_s:
                    await asyncio.sleep(pause_s)

        run.first_at = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(workers)))
    return run


async def _one(session: aiohttp.ClientSession, url: str, run: Run, check_headers: bool) -> None:
    try:
        async with session.post(url, data=BODY,
                                headers={"content-type": "application/json"}) as response:
            body = await response.read()
            run.last_at = time.monotonic()
            run.statuses[response.status] += 1
            if response.status != 200:
                run.codes[_code(body)] += 1
            if check_headers and "RateLimit" not in response.headers:
                run.missing_headers += 1
    except (TimeoutError, aiohttp.ClientError):
        run.statuses["connection_error"] += 1


def _code(body: bytes) -> str:


    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unparsable"
