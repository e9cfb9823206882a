"""A ten-line proxy FunctionApp: the floor the gateway is measured against (bench_gateway)."""
import os

import aiohttp
import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
session: list[aiohttp.ClientSession] = []


@app.route(route="{*path}", methods=["POST"])
async def proxy(req: Request) -> Response:
    session or session.append(aiohttp.ClientSession(os.environ["BACKEND_URL"]))
    async with session[0].post("/infer", data=await req.body(), headers=req.headers) as answer:
        return Response(await answer.read(), answer.status, media_type=answer.content_type)
