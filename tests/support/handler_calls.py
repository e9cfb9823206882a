"""Calling the registered handlers directly: a Starlette request in, a response's body out.

Used by the handler-level unit tests and by load/bench_auth_cpu.py.
"""

from __future__ import annotations

import json

from starlette.requests import Request


def make_request(method: str, path: str, body: bytes = b"", headers=None,
                 query: str = "", client: str = "198.51.100.4") -> Request:
    """`headers`: a dict, or a list of (name, value) pairs when a name repeats."""
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    raw = [(k.lower().encode(), v.encode()) for k, v in pairs]
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "headers": raw,
             "client": (client, 50000), "server": ("127.0.0.1", 7071), "scheme": "http"}
    chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)] or [b""]

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    return Request(scope, receive)


async def read_body(response) -> bytes:
    if hasattr(response, "body_iterator"):
        return b"".join([chunk async for chunk in response.body_iterator])
    return response.body


async def read_json(response) -> dict:
    return json.loads(await read_body(response))
