"""The host's relay of a worker's answer body to the client (funchost/front.py).

The local host only: in Azure the Functions host relays. It is on every benchmark's path, so
its cost per streamed chunk is measured with the gateway's (load/profile_streams.py).
"""

from __future__ import annotations

import asyncio
import contextlib

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from .workerhttp import Answer


async def until_disconnect(relay, receive) -> None:
    """Run `relay` but stop it when the client goes away: closing the worker's response then
    tells the function its client left (a stream's upstream request is closed at once)."""
    relaying = asyncio.ensure_future(relay)
    watching = asyncio.ensure_future(disconnected(receive))
    try:
        await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        if not relaying.done():
            relaying.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relaying


async def disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def relay_body(response: Answer, send, idle_s: float, sink=None) -> None:
    """The worker's body to the client chunk by chunk; TimeoutError when the worker sends
    nothing for `idle_s` (one timer per answer: Answer.chunks). With `sink`, chunks go to it
    from the worker connection's callback while it can take them; the rest come here."""
    async for chunk in response.chunks(idle_s, sink):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


def direct_sink(send):
    """A writer of body chunks straight to the client's connection, for uvicorn's httptools
    server (this host's) once a chunked answer's head went out; None for any other server.

    Per chunk it does what uvicorn's `send` does for a chunked body, without the task step,
    the ASGI message and the checks around them (load/profile_streams.py: the host's relay
    was most of its CPU per chunk that is not a syscall). It refuses (False) while the client
    is gone or its socket is full, so those chunks take `send`'s path, which waits for the
    client. The local host only: in Azure the Functions host relays."""
    cycle = getattr(send, "__self__", None)
    if not isinstance(cycle, RequestResponseCycle) or cycle.chunked_encoding is not True \
            or cycle.response_complete:
        return None
    transport, flow = cycle.transport, cycle.flow

    def sink(data: bytes) -> bool:
        if cycle.disconnected or flow.write_paused or transport.is_closing():
            return False
        try:  # runs in the worker connection's callback: a failure must leave the chunk queued
            transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        except (OSError, RuntimeError):
            return False
        return True

    return sink
