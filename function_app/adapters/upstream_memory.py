"""The upstream in memory: scripted answers, recorded requests, the httpx upstream's failures.

A test says what the backend does, per request, with a `Reply` (status, headers, the body's
chunks and how the body ends) or a `Fail` (no answer at all), and reads back what was sent
(`requests`) and which answers are still open (`open`). Outcomes reach the caller exactly as
HttpxUpstream reports them (tests/contract/test_upstream_contract.py runs one suite over both):

    Fail("refused")    send raises UpstreamConnectError (502; the request was never sent)
    Fail("reset")      send raises UpstreamError (502), not a timeout
    Fail("silent")     send raises UpstreamTimeout (504) when the request's timeout_s passes
    Fail("overloaded") send raises Overloaded (503) with Retry-After, as a full pool does
    Reply(end="cut")   the body raises UpstreamError after the scripted chunks
    Reply(end="stall") the body raises UpstreamTimeout at the deadline after the chunks

Deadlines run on the event loop's clock, as the real ones do. An answer nobody reads is closed
when its deadline passes, and the next read raises UpstreamTimeout.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..core.errors import (
    GatewayError,
    Overloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from ..core.models import Headers
from ..core.upstream import UpstreamRequest, UpstreamResponse


@dataclass(frozen=True)
class Reply:
    """An answer. `chunks` may be an async iterable (a generator that waits, or records being
    closed); then build a fresh Reply per request, since it can be read only once."""

    status: int = 200
    headers: Headers = field(default_factory=list)
    chunks: Iterable[bytes] | AsyncIterable[bytes] = ()
    end: Literal["clean", "cut", "stall"] = "clean"


@dataclass(frozen=True)
class Fail:
    """No answer at all; see the module docstring for what each kind raises."""

    kind: Literal["refused", "reset", "silent", "overloaded"]


type Script = Reply | Fail
type Respond = Callable[[UpstreamRequest], Script | Awaitable[Script]]


class MemoryUpstream:
    """Answers every request from `respond`: one script for all, or a function of the request
    (which may be async, e.g. to wait for the test; the wait counts against the deadline)."""

    RETRY_AFTER_S = "1"

    def __init__(self, respond: Script | Respond | None = None) -> None:
        self.respond = respond if respond is not None else Reply()
        self.requests: list[UpstreamRequest] = []
        self.answers: list[MemoryBody] = []
        self.closed = False

    @property
    def open(self) -> int:
        """Answers whose body has neither ended nor been closed."""
        return sum(not body.closed for body in self.answers)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.requests.append(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                script = await self._script(request)
                if isinstance(script, Fail):
                    await _fail(script)
        except TimeoutError:
            raise UpstreamTimeout() from None
        body = MemoryBody(request, script, loop, deadline)
        self.answers.append(body)
        return UpstreamResponse(script.status, list(script.headers), body)

    async def _script(self, request: UpstreamRequest) -> Script:
        if isinstance(self.respond, Reply | Fail):
            return self.respond
        script = self.respond(request)
        return await script if inspect.isawaitable(script) else script

    async def aclose(self) -> None:
        self.closed = True
        for body in self.answers:
            await body.aclose()


async def _fail(script: Fail) -> None:
    if script.kind == "silent":
        await asyncio.Event().wait()  # until the deadline
    if script.kind == "refused":
        raise UpstreamConnectError()
    if script.kind == "overloaded":
        raise Overloaded(headers={"Retry-After": MemoryUpstream.RETRY_AFTER_S})
    raise UpstreamError()


class MemoryBody:
    """A scripted body: its chunks (empty ones skipped), then its scripted end. `closed` once
    it has ended or been closed, by the reader or at the deadline."""

    def __init__(self, request: UpstreamRequest, script: Reply, loop: asyncio.AbstractEventLoop,
                 deadline: float) -> None:
        self.request = request
        chunks = script.chunks
        self._chunks: AsyncIterator[bytes] = (
            aiter(chunks) if isinstance(chunks, AsyncIterable) else _async(chunks))
        self._end = script.end
        self._deadline = deadline
        self.closed = False
        self.expired = False
        self._reading = False
        self._timer = loop.call_at(deadline, self._expire)
        self._closing: asyncio.Future[None] | None = None

    def _expire(self) -> None:
        self.expired = True
        if not self._reading and not self.closed:  # a read in progress times out by itself
            self._closing = asyncio.ensure_future(self.aclose())

    def __aiter__(self) -> MemoryBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            while True:
                if self.expired:
                    raise UpstreamTimeout()
                self._reading = True
                try:
                    async with asyncio.timeout_at(self._deadline):
                        chunk = await anext(self._chunks, None)
                        if chunk is None:
                            await self._finish()
                finally:
                    self._reading = False
                if chunk is None:
                    await self.aclose()
                    raise StopAsyncIteration
                if chunk:
                    return chunk
        except TimeoutError:
            await self.aclose()
            raise UpstreamTimeout() from None
        except GatewayError:
            await self.aclose()
            raise

    async def _finish(self) -> None:
        if self._end == "cut":
            raise UpstreamError()
        if self._end == "stall":
            await asyncio.Event().wait()  # until the deadline

    async def aclose(self) -> None:
        """End the exchange; an async chunk source is closed too (its `finally` runs)."""
        if self.closed:
            return
        self.closed = True
        self._timer.cancel()
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


async def _async(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
