"""The minimal reference proxy the benchmark measures the gateway against: raw ASGI on uvicorn,
forwarding every request to BACKEND_URL with aiohttp's client (the fastest measured here)."""

import os

import aiohttp

BACKEND = os.environ["BACKEND_URL"]
session: aiohttp.ClientSession | None = None


async def app(scope, receive, send):
    global session
    if scope["type"] != "http":
        return
    session = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    async with session.request(scope["method"], BACKEND + scope["path"], data=body,
                               headers={"content-type": "application/json"}) as upstream:
        headers = [(b"content-type", upstream.headers.get("content-type", "").encode())]
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        async for chunk in upstream.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
