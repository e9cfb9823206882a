"""The Upstream contract, run against the memory upstream and every real adapter alike.

The real adapters (aiohttp directly, httpx over aiohttp, httpx's own pool) talk to a real
backend process, tests/support/scripted_backend.py, told by each request's URL what to do; the
memory upstream gets the same script as a value. Waits are for conditions, bounded only so that
a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from function_app.adapters.upstreams import open_upstream
from function_app.core.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from function_app.core.upstream import Upstream, UpstreamRequest
from function_app.http.headers import Headers
from scripts.procs import PYTHON, free_port, spawn
from tests.support.scripted_backend import script_query
from tests.support.upstream_memory import Fail, MemoryUpstream, Reply
from tests.support.waiting import wait_until

BOUND_S = 10.0  # only a regression waits this long
IDS = itertools.count()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class MemoryHarness:
    """Scripts the memory upstream by URL and reads its records."""

    def __init__(self) -> None:
        self.scripts: dict[str, Reply | Fail] = {}
        self.upstream = MemoryUpstream(lambda request: self.scripts[request.url])

    def url(self, script: Reply | Fail, path: str = "/x") -> str:
        url = f"http://memory.invalid{path}?id={next(IDS)}"
        self.scripts[url] = script
        return url

    async def received(self, url: str) -> Seen:
        request = next(r for r in self.upstream.requests if r.url == url)
        return Seen(request.method, urlsplit(url).path,
                    {k.lower(): v for k, v in request.headers}, request.body)

    async def released(self, url: str) -> bool:
        return any(body.closed for body in self.upstream.answers if body.request.url == url)


class BackendHarness:
    """Scripts the real backend process through the URL and asks it what it saw."""

    def __init__(self, base: str, upstream: Upstream) -> None:
        self.base = base
        self.upstream = upstream

    def url(self, script: Reply | Fail, path: str = "/x") -> str:
        ident = str(next(IDS))
        if isinstance(script, Fail):
            if script.kind == "refused":  # nothing listens there
                return f"http://127.0.0.1:{free_port()}{path}?id={ident}"
            return f"{self.base}{path}?{script_query(ident, fail=script.kind)}"
        query = script_query(ident, status=script.status, headers=list(script.headers),
                             chunks=list(script.chunks), end=script.end)  # type: ignore[arg-type]
        return f"{self.base}{path}?{query}"

    async def _get(self, path: str):
        async with httpx.AsyncClient(trust_env=False) as client:
            return (await client.get(f"{self.base}{path}")).json()

    async def received(self, url: str) -> Seen:
        target = url.removeprefix(self.base)
        seen = next(s for s in await self._get("/_seen") if s["target"] == target)
        return Seen(seen["method"], urlsplit(target).path, seen["headers"],
                    seen["body"].encode("latin-1"))

    async def released(self, url: str) -> bool:
        ident = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))["id"]
        return ident in await self._get("/_released")


@pytest.fixture(scope="module")
def scripted_backend(tmp_path_factory):
    port = free_port()
    proc = spawn("scripted-backend", [PYTHON, "-m", "tests.support.scripted_backend", "--port",
                                      str(port)], port=port,
                 log_dir=tmp_path_factory.mktemp("upstream-contract"))
    yield proc
    proc.stop()


@pytest.fixture(params=["memory", "aiohttp-direct", "aiohttp", "httpx"])
async def harness(request):
    if request.param == "memory":
        made: MemoryHarness | BackendHarness = MemoryHarness()
    else:
        backend = request.getfixturevalue("scripted_backend")
        made = BackendHarness(backend.url, open_upstream(request.param, 8))
    yield made
    await made.upstream.aclose()


def get(url: str, timeout_s: float = 30.0, body: bytes = b"",
        headers: list[tuple[str, str]] | None = None) -> UpstreamRequest:
    method = "POST" if body else "GET"
    return UpstreamRequest(method, url, Headers(headers or ()), body, 2.0, timeout_s)


async def read_all(upstream: Upstream, request: UpstreamRequest) -> tuple[int, dict, bytes]:
    answer = await upstream.send(request)
    body = b"".join([chunk async for chunk in answer.body])
    return answer.status, {k.lower(): v for k, v in answer.headers}, body


async def test_an_answer_carries_its_status_headers_and_body(harness):
    url = harness.url(Reply(201, [("X-Scripted", "yes")], [b"first ", b"second"]))
    status, headers, body = await read_all(harness.upstream, get(url))
    assert (status, headers["x-scripted"], body) == (201, "yes", b"first second")


async def test_the_backend_receives_method_path_headers_and_body(harness):
    url = harness.url(Reply(), path="/v1/chat")
    sent = [("content-type", "application/json"), ("x-request-id", "r-1")]
    await read_all(harness.upstream, get(url, body=b'{"a": 1}', headers=sent))
    seen = await harness.received(url)
    assert (seen.method, seen.path, seen.body) == ("POST", "/v1/chat", b'{"a": 1}')
    assert {k: seen.headers.get(k) for k, _ in sent} == dict(sent)


async def test_a_chunk_arrives_while_the_rest_of_the_body_is_still_coming(harness):
    url = harness.url(Reply(chunks=[b"first"], end="stall"))
    answer = await harness.upstream.send(get(url))
    assert await asyncio.wait_for(anext(aiter(answer.body)), BOUND_S) == b"first"
    await answer.body.aclose()  # what a client that goes away causes
    await wait_until(lambda: harness.released(url))


async def test_a_refused_connection_is_a_connect_error(harness):
    with pytest.raises(UpstreamConnectError) as caught:
        await harness.upstream.send(get(harness.url(Fail("refused"))))
    assert caught.value.status == 502


async def test_a_reset_before_answering_is_502_not_504(harness):
    with pytest.raises(UpstreamError) as caught:
        await harness.upstream.send(get(harness.url(Fail("reset"))))
    assert not isinstance(caught.value, UpstreamTimeout | UpstreamConnectError)
    assert caught.value.status == 502


async def test_a_silent_backend_is_504_at_the_deadline(harness):
    with pytest.raises(UpstreamTimeout) as caught:
        await harness.upstream.send(get(harness.url(Fail("silent")), timeout_s=0.3))
    assert caught.value.status == 504


async def test_a_body_cut_short_raises_502_after_the_chunks_that_came(harness):
    answer = await harness.upstream.send(get(harness.url(Reply(chunks=[b"first"], end="cut"))))
    received = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in answer.body:
            received.append(chunk)
    assert not isinstance(caught.value, UpstreamTimeout)
    assert b"".join(received) == b"first"


async def test_a_stalled_body_is_504_at_the_deadline_and_released(harness):
    url = harness.url(Reply(chunks=[b"first"], end="stall"))
    answer = await harness.upstream.send(get(url, timeout_s=0.4))
    received = []
    with pytest.raises(UpstreamTimeout):
        async for chunk in answer.body:
            received.append(chunk)
    assert received == [b"first"]
    await wait_until(lambda: harness.released(url))


async def test_an_answer_nobody_reads_is_closed_at_its_deadline(harness):
    url = harness.url(Reply(chunks=[b"first"], end="stall"))
    answer = await harness.upstream.send(get(url, timeout_s=0.4))
    await wait_until(lambda: harness.released(url))  # without a single read
    with pytest.raises(UpstreamTimeout):
        await anext(aiter(answer.body))


async def test_the_body_reaches_the_backend_byte_for_byte(harness):
    url = harness.url(Reply())
    await read_all(harness.upstream, get(url, body=bytes(range(256))))
    assert (await harness.received(url)).body == bytes(range(256))
