"""A raw HTTP/1.1 client for hostile-input tests: the request bytes go out exactly as written.

httpx and every other client normalize the target (dot segments, escapes) and refuse odd header
bytes, which is what these tests must send. Responses are parsed just enough: status, headers,
and a body framed by Content-Length, chunked encoding or the end of the connection.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


class Reset(Exception):
    """The connection was reset or closed before a whole response arrived."""


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    closes: bool  # the server will close the connection after this response

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def error_code(self) -> str | None:
        try:
            return json.loads(self.body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


def build(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"",
          *, chunked: bool = False) -> bytes:
    """Request bytes; Content-Length (or chunked framing) is added to match `body`."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"host: gateway.test"]
    lines += [k + b": " + v for k, v in headers]
    if chunked:
        lines.append(b"transfer-encoding: chunked")
        framed = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(b"content-length: %d" % len(body))
        framed = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + framed


class Connection:
    """One kept-alive connection; `exchange` reconnects when the last response closed it."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes, *, head: bool = False) -> RawResponse:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, limit=1 << 22)
        try:
            self.writer.write(request)
            await self.writer.drain()
            response = await read_response(self.reader, head=head)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            await self.close()
            raise Reset(f"{type(exc).__name__}: {exc}") from None
        if response.closes:
            await self.close()
        return response

    async def send_partial(self, request: bytes) -> None:
        """Write `request` and close at once (a client that leaves mid-body)."""
        await self.close()
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(request)
        await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> RawResponse:
    try:
        raw_head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise ConnectionError("closed before a response") from exc
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(k.strip().lower(), v.strip()) for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)]
    values = dict(headers)
    closes = "close" in values.get("connection", "").lower()
    if head or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in values.get("transfer-encoding", "").lower():
        body = await _chunked(reader)
    elif "content-length" in values:
        body = await reader.readexactly(int(values["content-length"]))
    else:
        body, closes = await reader.read(), True
    return RawResponse(status, headers, body, closes)


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
