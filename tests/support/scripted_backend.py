"""A raw HTTP/1.1 backend that does what each request's query string says (the upstream contract).

The same vocabulary as tests/support/upstream_memory.py, carried in the URL
(`script_query` builds it):

    id=text                names the exchange in /_released
    status=201             the answer's status (default 200)
    header=name:value      an answer header (repeatable)
    chunk=text             a body chunk, sent and flushed on its own (repeatable)
    fill=N                 after the chunks, N bytes of "x" in 64 KiB chunks (a huge body or
                           SSE event without a URL to match); a client closing meanwhile is a
                           release, as below
    end=clean|cut|stall    after the chunks: finish the body, drop the connection mid-body, or
                           send nothing more until the client closes the connection
    fail=reset|silent      no answer: drop the connection at once, or say nothing until closed

In a chunk or an answer header, `{h:name}` stands for the value of the request's header `name`
(empty when absent), so one script answers each client with its own marker: a cache that replays
an answer to another client shows the first client's marker (tests/e2e/test_fuzz.py).

`GET /healthz` answers 200 (readiness). `GET /_seen` answers the requests received so far as a
JSON list (method, target, headers with lower-case names, body as latin-1 text), and
`GET /_released` the `id` query values of the answers held open (stall, silent) whose client
has since closed the connection, so a test sees when a client has let go of one. Paths under
`/_` and `/healthz` are not recorded.

Run: python -m tests.support.scripted_backend --port N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.echo_backend import read_request


def script_query(ident: str, *, status: int = 200, headers: list[tuple[str, str]] | None = None,
                 chunks: list[bytes] | None = None, end: str = "clean",
                 fail: str | None = None, fill: int = 0) -> str:
    """The query string that makes this backend answer so (chunks are latin-1 text)."""
    pairs: list[tuple[str, str]] = [("id", ident), ("status", str(status)), ("end", end)]
    if fill:
        pairs.append(("fill", str(fill)))
    pairs += [("header", f"{name}:{value}") for name, value in headers or []]
    pairs += [("chunk", chunk.decode("latin-1")) for chunk in chunks or []]
    if fail:
        pairs.append(("fail", fail))
    return urlencode(pairs)


_FIELD = re.compile(r"\{h:([a-z0-9-]+)\}")


def _filled(text: str, headers: dict[str, str]) -> str:
    """`text` with each `{h:name}` replaced by the request's header `name` (CR/LF dropped)."""
    if "{h:" not in text:
        return text
    return _FIELD.sub(lambda m: re.sub(r"[\r\n]", "", headers.get(m.group(1), "")), text)


class Scripted:
    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.released: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self.answer(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is done."""
        method, target, headers, body = await read_request(reader)
        path, query = urlsplit(target).path, parse_qs(urlsplit(target).query)
        if path == "/_seen":
            return await self.plain(writer, json.dumps(self.seen).encode())
        if path == "/_released":
            return await self.plain(writer, json.dumps(self.released).encode())
        if path != "/healthz":
            self.seen.append({"method": method, "target": target, "headers": headers,
                              "body": body.decode("latin-1")})
        fail = query.get("fail", [""])[0]
        if fail == "reset":
            writer.transport.abort()
            return False
        if fail == "silent":
            await self.hold(reader, query)
            return False
        return await self.reply(reader, writer, query, headers)

    async def reply(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    query: dict[str, list[str]], headers: dict[str, str]) -> bool:
        status = int(query.get("status", ["200"])[0])
        head = [f"HTTP/1.1 {status} Scripted", "transfer-encoding: chunked",
                *(_filled(h, headers).replace(":", ": ", 1) for h in query.get("header", []))]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for text in query.get("chunk", []):
            chunk = _filled(text, headers).encode("latin-1")
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        if not await self.fill(writer, query):
            return False
        end = query.get("end", ["clean"])[0]
        if end == "cut":  # a clean close mid-body: the chunks already sent still arrive
            return False
        if end == "stall":
            await self.hold(reader, query)
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def fill(self, writer: asyncio.StreamWriter, query: dict[str, list[str]]) -> bool:
        """Send `fill` bytes of "x"; False (and a release) when the client closed meanwhile."""
        left = int(query.get("fill", ["0"])[0])
        piece = b"x" * 65536
        try:
            while left > 0:
                if writer.transport.is_closing():
                    raise ConnectionResetError("the client closed the connection")
                part = piece[:left]
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                left -= len(part)
        except ConnectionError:
            self.released.append(query.get("id", [""])[0])
            return False
        return True

    async def hold(self, reader: asyncio.StreamReader, query: dict[str, list[str]]) -> None:
        """Say nothing until the client closes the connection. A client that closes with part
        of the answer still unread in its socket buffer resets the connection (RST, not FIN):
        that is a release too, and must not escape as an error before it is recorded."""
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.released.append(query.get("id", [""])[0])

    async def plain(self, writer: asyncio.StreamWriter, payload: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(payload), payload))
        await writer.drain()
        return True


async def main(port: int) -> None:
    scripted = Scripted()
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
