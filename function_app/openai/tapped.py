"""A metered answer's body on its way to the client: every chunk through the bill's tap, the bill
settled and the upstream closed however it ends (openai/bill.py settle_on_answer makes it).

It is handed on as a core/body_watch.WatchedBody: the telemetry stage hooks into it for the first
chunk's time and the end instead of wrapping it in a generator of its own (two frames per chunk,
docs/perf/pass9-chunk.md). Per chunk the loop makes no call it can do without: the tap's
`too_large` is read in place, and the pieces sent are held for the sent-token count, which
runs only when a stream is cut short or the held bytes pass a bound (midstream.SentTokens).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..core.body_watch import CLIENT_CLOSED, BodyWatch, WatchedBody, ending
from ..core.errors import GatewayError
from .midstream import SentTokens
from .sse import BodyTap

if TYPE_CHECKING:  # bill.py imports this module
    from .bill import Bill, Wire

log = logging.getLogger("function_app.openai.bill")  # the name these lines have always had


def tapped_body(body: AsyncIterator[bytes], tap: Any, bill: Bill, wire: Wire) -> WatchedBody:
    """`body` through `tap` (StreamTap or BodyTap), settling `bill`, as a watchable body."""
    watch = BodyWatch()
    return WatchedBody(_tapped(body, tap, bill, wire, watch), watch)


async def _tapped(body: AsyncIterator[bytes], tap: Any, bill: Bill, wire: Wire, watch: BodyWatch
                  ) -> AsyncIterator[bytes]:
    """Forward `body` through `tap`; settle and close the upstream however it ends, then tell
    `watch` how it ended. A stream cut by a GatewayError ends with the wire's error event."""
    sent = SentTokens()
    # The pieces sent wait uncounted, up to HELD_BYTES (midstream.SentTokens: only a stream cut
    # short needs the count); a plain answer is never counted (it is not ended with an event).
    held, held_bytes, holding = sent.held, 0, not isinstance(tap, BodyTap)
    most = sent.HELD_BYTES
    rewrite, upstream = wire.rewrite, body
    if rewrite is not None and isinstance(tap, BodyTap):
        body = _whole(upstream)  # an id is rewritten in whole bodies only, never split
    unseen, error, failed = True, CLIENT_CLOSED, None  # unless it ends or raises first
    feed = tap.feed  # looked up once, not per chunk
    try:
        try:
            async for chunk in body:
                out = feed(chunk)
                if out:
                    if holding:
                        held.append(out)
                        held_bytes += len(out)
                        if held_bytes > most:
                            sent.count()
                            held_bytes = 0
                    if unseen:
                        unseen = False
                        watch.chunk_out()
                    yield rewrite(out) if rewrite is not None else out
                if tap.too_large is not None:  # an event over SSE_MAX_EVENT_BYTES ends it here
                    tap.check()
            last = tap.flush()
            last = rewrite(last) if last and rewrite is not None else last
        except GatewayError as exc:
            if isinstance(tap, BodyTap):
                raise  # a plain answer cut short: the client sees a truncated body
            last = _cut_short(exc, tap, bill, sent, wire)
        if last:
            watch.chunk_out()  # (tells only if nothing went out before)
            yield last
        error = None
    except BaseException as exc:
        error, failed = ending(exc), exc
        raise
    finally:
        bill.settle(tap.usage)
        await _close(body, upstream)
        watch.ended(error, None if error == CLIENT_CLOSED else failed)


def _cut_short(error: GatewayError, tap: Any, bill: Bill, sent: SentTokens, wire: Wire) -> bytes:
    """A stream its upstream cut: billed for what was sent (or the usage seen), and the event
    that ends it for the client."""
    log.warning("stream of model %s ended early: %s", bill.model, error.code)
    bill.settle(tap.usage or sent.usage(bill.prompt_tokens))
    return wire.error_event(error)


async def _close(*parts: AsyncIterator[bytes]) -> None:
    """Close each distinct part that can be closed, in order."""
    for part in {id(part): part for part in parts}.values():
        close = getattr(part, "aclose", None)
        if close is not None:
            await close()


async def _whole(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body in one piece (a plain answer to be rewritten; bounded by the upstream)."""
    chunks = [chunk async for chunk in body]
    yield b"".join(chunks)
