"""A ten-line streaming proxy FunctionApp: the floor bench_streams --reference measures against."""
import os

import aiohttp
import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, StreamingResponse

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
session: list[aiohttp.ClientSession] = []


async def relay(answer: aiohttp.ClientResponse):
    async with answer:  # the upstream body, chunk by chunk as it arrives
        async for chunk in answer.content.iter_any():
            yield chunk


@app.route(route="{*path}", methods=["POST"])
async def proxy(req: Request) -> StreamingResponse:
    if not session:  # limit=0: no pool cap (aiohttp's 100 would queue streams past the 100th)
        session.append(aiohttp.ClientSession(os.environ["BACKEND_URL"],
                                             connector=aiohttp.TCPConnector(limit=0)))
    answer = await session[0].post("/v1/chat/completions", data=await req.body(),
                                   headers={"content-type": "application/json"})
    return StreamingResponse(relay(answer), answer.status, media_type=answer.content_type)
