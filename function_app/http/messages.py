"""Plain request and response values that flow through the pipeline, free of any web framework."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from .context import RequestContext
from .headers import Headers


@dataclass(slots=True)
class Unread:
    """A request body still with the client. `read(cap)` returns all of it, or raises
    PayloadTooLarge as soon as it passes `cap` bytes; it can be called once. (Not frozen: a
    frozen dataclass sets its field through `object.__setattr__`, a call more per request.)"""

    read: Callable[[int], Awaitable[bytes]]


Body = Unread | bytes


class BodyNotRead(RuntimeError):
    """A stage after the body stage found the body unread: the stage order is wrong."""


@dataclass(slots=True)
class GatewayRequest:
    """One client request. Header names are lower case. `body` is `Unread` until the body stage
    reads it (under its size cap) and puts the bytes in its place; `context` holds what the
    stages found out (http/context.py). Slots: made per request, its fields set and read a few
    dozen times (no instance dict to make and probe)."""

    method: str
    path: str
    query: str
    headers: Headers
    body: Body
    client_host: str
    scheme: str = "http"
    request_id: str = ""
    raw_path: str = ""  # the path as the client sent it, still encoded (latin-1 text of bytes)
    context: RequestContext = field(default_factory=RequestContext)

    @property
    def content(self) -> bytes:
        """The body's bytes, for the stages after the body stage."""
        if isinstance(self.body, Unread):
            raise BodyNotRead("the body stage has not read the body yet")
        return self.body


@dataclass(slots=True)
class GatewayResponse:
    """`body` is bytes for answers made here, an async iterator for streamed upstream answers.
    Slots, as GatewayRequest."""

    status: int
    headers: Headers
    body: bytes | AsyncIterator[bytes] = b""
