"""uvicorn's HTTP/1.1 protocol with the request-head limits the Functions front end applies.

A request line over `max_request_line` gets 414; more than `max_headers` headers or more than
`max_header_bytes` of them 431; headers not complete within `header_timeout_s` of the first
byte (a slow client holding a connection) 408; each with a JSON body, then the connection
closes. Everything else is uvicorn's httptools protocol unchanged.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import error_body, request_id
from .hostconfig import Limits

STATUS_TEXT = {400: b"Bad Request", 408: b"Request Timeout", 414: b"URI Too Long",
               431: b"Request Header Fields Too Large"}


def guarded_protocol(limits: Limits) -> type[HttpToolsProtocol]:
    """A protocol class bound to `limits` (uvicorn takes a class, not an instance)."""

    class GuardedProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_count = 0
        _head_bytes = 0
        _refused = False

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._head_timer = self.loop.call_later(limits.header_timeout_s, self._too_slow)
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_count = self._head_bytes = 0

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > limits.max_request_line:
                self._refuse("uri_too_long", 414)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_count += 1
            self._head_bytes += len(name) + len(value) + 4
            if self._head_count > limits.max_headers or self._head_bytes > limits.max_header_bytes:
                self._refuse("headers_too_large", 431)
                return
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._cancel_timer()
            if not self._refused:
                super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._refused:
                super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timer()
            super().connection_lost(exc)

        def _cancel_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self.cycle is None or self.cycle.response_complete:
                self._refuse("request_timeout", 408)

        def send_400_response(self, msg: str) -> None:
            # uvicorn answers an unparsable request in plain text; the host answers in JSON.
            self._refuse("bad_request", 400)

        def _refuse(self, code: str, status: int) -> None:
            if self._refused:
                return
            self._refused = True
            self._cancel_timer()
            request_headers = self.headers or []
            _, headers, body = error_body(code, request_id(request_headers))
            head = b"HTTP/1.1 %d %s\r\n" % (status, STATUS_TEXT[status])
            lines = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
            if not self.transport.is_closing():
                self.transport.write(head + lines + b"connection: close\r\n\r\n" + body)
                self.transport.close()

    return GuardedProtocol

