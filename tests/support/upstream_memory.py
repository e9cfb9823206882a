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
from dataclasses import dataclass
from typing import Literal

from function_app.adapters.deadline_body import DeadlineBody
from function_app.core.errors import (
    Overloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from function_app.core.upstream import UpstreamRequest, UpstreamResponse
from function_app.http.headers import Headers, Pairs


@dataclass(frozen=True)
class Reply:
    """An answer. `chunks` may be an async iterable (a generator that waits, or records being
    closed); then build a fresh Reply per request, since it can be read only once."""

    status: int = 200
    headers: Pairs = ()
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
        body = MemoryBody(request, script, deadline)
        self.answers.append(body)
        return UpstreamResponse(script.status, Headers(script.headers), body)

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


class MemoryBody(DeadlineBody):
    """A scripted body, held to the deadline as HttpxUpstream's is. `closed` once it has ended
    or been closed, by the reader or at the deadline; an async chunk source is closed then too
    (its `finally` runs)."""

    def __init__(self, request: UpstreamRequest, script: Reply, deadline: float) -> None:
        self.request = request
        chunks = script.chunks
        source = aiter(chunks) if isinstance(chunks, AsyncIterable) else _async(chunks)
        self._source, self._scripted = source, _ending(source, script.end)
        super().__init__(self._scripted, deadline, self._close_source,
                         lambda exc: UpstreamTimeout())

    async def _close_source(self) -> None:
        await self._scripted.aclose()
        close = getattr(self._source, "aclose", None)
        if close is not None:
            await close()


async def _ending(source: AsyncIterator[bytes], end: str) -> AsyncIterator[bytes]:
    """The chunks, then the scripted end: none, a cut (UpstreamError), or a stall."""
    async for chunk in source:
        yield chunk
    if end == "cut":
        raise UpstreamError()
    if end == "stall":
        await asyncio.Event().wait()  # until the deadline


async def _async(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
