"""What the memory upstream offers beyond the shared contract (tests/contract/...upstream...)."""

import asyncio

import pytest

from function_app.adapters.httpx_upstream import HttpxUpstream
from function_app.core.errors import Overloaded
from function_app.core.upstream import UpstreamRequest
from function_app.http.headers import Headers
from tests.support.upstream_memory import Fail, MemoryUpstream, Reply


def get(url: str = "http://b/x", timeout_s: float = 5.0) -> UpstreamRequest:
    return UpstreamRequest("GET", url, Headers(), b"", 1.0, timeout_s)


async def test_overloaded_is_the_503_a_full_pool_gives():
    with pytest.raises(Overloaded) as caught:
        await MemoryUpstream(Fail("overloaded")).send(get())
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": HttpxUpstream.RETRY_AFTER_S}


async def test_every_request_is_recorded_and_answered_by_the_function_of_it():
    upstream = MemoryUpstream(lambda request: Reply(200 if request.url.endswith("/ok") else 404))
    statuses = [(await upstream.send(get(url))).status for url in ("http://b/ok", "http://b/no")]
    assert statuses == [200, 404]
    assert [r.url for r in upstream.requests] == ["http://b/ok", "http://b/no"]


async def test_an_async_answer_may_wait_and_an_async_body_is_closed_with_the_answer():
    release, closed = asyncio.Event(), asyncio.Event()

    async def chunks():
        try:
            yield b"first"
            yield b"second"
        finally:
            closed.set()

    async def respond(request):
        await release.wait()
        return Reply(chunks=chunks())

    upstream = MemoryUpstream(respond)
    pending = asyncio.ensure_future(upstream.send(get()))
    await asyncio.sleep(0)
    assert not pending.done() and len(upstream.requests) == 1
    release.set()
    answer = await pending
    assert await anext(aiter(answer.body)) == b"first" and upstream.open == 1
    await answer.body.aclose()
    assert closed.is_set() and upstream.open == 0


async def test_empty_chunks_are_skipped_as_the_real_upstream_skips_them():
    answer = await MemoryUpstream(Reply(chunks=[b"", b"a", b"", b"b"])).send(get())
    assert [chunk async for chunk in answer.body] == [b"a", b"b"]
