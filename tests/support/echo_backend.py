"""A raw HTTP/1.1 echo backend for hostile-input tests: records every request target it receives.

No framework sits in front of it, so nothing normalizes, decodes or rejects a path before it is
recorded: what the file holds is exactly what the gateway sent. Each request appends one JSON
line to `--record` (`target`, `method`, `headers` as latin-1 text) and is answered 200 with the
same JSON. GET /healthz answers 200 too (readiness and the gateway's probes). A target whose
path ends in `/flood` is answered with an endless chunked stream, as fast as the connection takes
it, until the connection closes; one ending in `/status` answers `{"floods": <open floods>}`, so
a test sees when the gateway has let go of a flood. A target with a `cacheable` path segment
is answered with `max-age=60` and no Vary, as a backend that forgets Vary would: the fuzzer
checks that no cached echo reaches a request it does not fit (tests/e2e/test_fuzz.py).

Run: python -m tests.support.echo_backend --port N --record FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = headers.get("content-length", "0").strip()
    return await reader.readexactly(int(length)) if length.isdigit() else b""


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    """One request off the connection: method, target, headers (lower-case names), body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    pairs = [line.split(":", 1) for line in lines[1:] if ":" in line]
    headers = {k.strip().lower(): v.strip() for k, v in pairs}
    return method, target, headers, await read_body(reader, headers)


FLOOD_CHUNK = b"%x\r\n" % 65536 + b"f" * 65536 + b"\r\n"


class Echo:
    def __init__(self, record_path: str):
        self.record = open(record_path, "a", buffering=1, encoding="utf-8")
        self.floods = 0

    async def flood(self, writer: asyncio.StreamWriter) -> None:
        self.floods += 1
        try:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                         b"cache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n")
            while True:
                writer.write(FLOOD_CHUNK)
                await writer.drain()
        finally:
            self.floods -= 1

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                method, target, headers, body = await read_request(reader)
                seen = {"method": method, "target": target, "headers": headers,
                        "body_bytes": len(body)}
                if target != "/healthz":
                    self.record.write(json.dumps(seen) + "\n")
                path = target.split("?", 1)[0]
                if path.endswith("/flood"):
                    await self.flood(writer)
                    return
                if path.endswith("/status"):
                    seen = {"floods": self.floods}
                payload = json.dumps(seen).encode()
                # no-store: an echo of this request must never be served to another one,
                # except where a test asks for a backend that forgets Vary
                caching = b"max-age=60" if "/cacheable" in path else b"no-store"
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"cache-control: %s\r\n"
                             b"content-length: %d\r\n\r\n" % (caching, len(payload))
                             + (b"" if method == "HEAD" else payload))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError):
            pass
        finally:
            writer.close()


async def main(port: int, record: str) -> None:
    echo = Echo(record)
    server = await asyncio.start_server(echo.handle, "127.0.0.1", port, limit=1 << 20)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.record))
