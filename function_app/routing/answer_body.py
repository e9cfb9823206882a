"""The body of an upstream answer on its way to the client: whole or streamed, and released."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from ..core.upstream import UpstreamResponse
from ..http.headers import Headers


async def complete_body(body: AsyncIterator[bytes], headers: Headers
                        ) -> bytes | AsyncIterator[bytes]:
    """The body as bytes when its first chunk already completes the length its `headers`
    declare (Content-Length), else a stream that starts with that chunk; with no length
    declared, the body as it is.

    Nothing waits longer than it would streamed: the first chunk is sent the moment it is in
    either way. A whole answer skips the streaming machinery, which costs a task group per
    response in Starlette.
    """
    value = headers.get("content-length")
    if value is None or not value.isdecimal():  # ASCII digits only (int() takes no "²")
        return body
    first = await anext(body, b"")
    if len(first) >= int(value):
        close = getattr(body, "aclose", None)  # close_quietly, inline: every whole answer
        if close is not None:
            await close()  # the relay's finally releases the connection
        return first
    return _prepend(first, body)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await close_quietly(rest)


def with_release(body: AsyncIterator[bytes], release: Callable[[], None]
                 ) -> AsyncIterator[bytes]:
    """`body`, calling `release` once however it ends (outstanding-request accounting): on a
    body that runs hooks at its end (adapters/deadline_body.DeadlineBody.on_end: no layer per
    chunk), after the exchange's own release; else from a generator around it."""
    on_end = getattr(body, "on_end", None)
    if on_end is not None:
        on_end(lambda _error: release())
        return body
    return _released(body, release)


async def _released(body: AsyncIterator[bytes], release: Callable[[], None]
                    ) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    finally:
        release()
        await close_quietly(body)


async def close_quietly(body: object) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()


async def buffered(answer: UpstreamResponse) -> tuple[bytes, UpstreamResponse]:
    """The whole body of `answer` (keep it for small ones), and the answer to pass on."""
    body = b"".join([chunk async for chunk in answer.body])

    async def again() -> AsyncIterator[bytes]:
        yield body

    return body, UpstreamResponse(answer.status, answer.headers, again())

