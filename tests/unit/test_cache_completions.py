"""The completion cache through the registered handlers, with a fake OpenAI backend."""

import json

import httpx
import pytest

from function_app.app import cachez, proxy, stats
from tests.support.handler_calls import make_request, read_body, read_json

JSON = {"content-type": "application/json"}
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "sim-python"}


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


STREAM = [
    event({**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None}]}),
    event({**HEAD, "choices": [{"index": 0, "delta": {"content": "echo "},
                                "finish_reason": None}]}),
    event({**HEAD, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}),
    event({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
]
USAGE_EVENT = event({**HEAD, "choices": [], "usage": USAGE})
DONE = b"data: [DONE]\n\n"
PLAIN = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "sim-python",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "echo hi"},
                      "logprobs": None, "finish_reason": "stop"}], "usage": USAGE}


class OpenAIBackend:
    def __init__(self, finish: bool = True, status: int = 200):
        self.calls = 0
        self.finish = finish
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        body = json.loads(request.content)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "x"}})
        if request.url.path == "/v1/embeddings":
            return httpx.Response(200, json={"object": "list", "data": [], "model": "m",
                                             "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        if not body.get("stream"):
            return httpx.Response(200, json=PLAIN)

        async def events():
            for piece in STREAM:
                yield piece
            if (body.get("stream_options") or {}).get("include_usage"):
                yield USAGE_EVENT
            if self.finish:
                yield DONE

        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=events())


def chat(**extra) -> bytes:
    return json.dumps({"model": "sim-python", "messages": [{"role": "user", "content": "hi"}],
                       **extra}).encode()


async def post(body: bytes, path: str = "/v1/chat/completions", client: str = "198.51.100.4",
               **headers):
    return await proxy(make_request("POST", path, body, {**JSON, **headers}, client=client))


@pytest.fixture
async def fake(install, backend):
    async def _install(responder=None, **env):
        responder = responder or OpenAIBackend()
        backend.respond = responder
        await install(**{"CACHE_COMPLETIONS": "sim-python", **env})
        return responder

    return _install


async def chunks_of(response) -> list[bytes]:
    return [chunk async for chunk in response.body_iterator]


async def test_a_repeated_completion_is_a_hit(fake):
    upstream = await fake()
    first = await post(chat())
    second = await post(chat())
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert await read_json(second) == PLAIN and "age" in second.headers
    assert upstream.calls == 1


async def test_key_order_whitespace_and_delivery_fields_do_not_matter(fake):
    upstream = await fake()
    await post(chat())
    same = b'{ "messages" : [ {"content":"hi", "role":"user"} ],\n "user": "u1",  ' \
           b'"model":"sim-python" }'
    assert (await post(same)).headers["x-cache"] == "HIT"
    assert (await post(chat(temperature=0.5))).headers["x-cache"] == "MISS"
    assert upstream.calls == 2


async def test_a_stored_stream_replays_event_by_event_without_usage_unless_asked(fake):
    upstream = await fake()
    first = await chunks_of(await post(chat(stream=True)))
    hit = await post(chat(stream=True))
    assert hit.headers["x-cache"] == "HIT"
    assert hit.headers["content-type"].startswith("text/event-stream")
    assert await chunks_of(hit) == first == [*STREAM, DONE]
    with_usage = await chunks_of(await post(chat(stream=True,
                                                 stream_options={"include_usage": True})))
    assert with_usage == [*STREAM, USAGE_EVENT, DONE]
    assert upstream.calls == 1


async def test_a_plain_request_is_served_from_a_stored_stream(fake):
    upstream = await fake()
    await chunks_of(await post(chat(stream=True)))
    hit = await post(chat())
    body = await read_json(hit)
    assert hit.headers["x-cache"] == "HIT" and upstream.calls == 1
    assert body["object"] == "chat.completion" and body["usage"] == USAGE
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo hi"}
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_a_stream_is_served_from_a_stored_plain_answer(fake):
    upstream = await fake()
    await read_body(await post(chat()))
    hit = await post(chat(stream=True, stream_options={"include_usage": True}))
    events = await chunks_of(hit)
    assert hit.headers["x-cache"] == "HIT" and upstream.calls == 1
    assert events[-1] == DONE
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    text = "".join(c["delta"].get("content", "") for p in payloads for c in p["choices"])
    assert text == "echo hi"
    assert payloads[-1]["usage"] == USAGE and payloads[-1]["choices"] == []
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)


async def test_an_unfinished_stream_is_not_stored(fake):
    upstream = await fake(OpenAIBackend(finish=False))
    await chunks_of(await post(chat(stream=True)))
    await chunks_of(await post(chat(stream=True)))
    assert upstream.calls == 2


async def test_an_error_is_not_stored(fake):
    upstream = await fake(OpenAIBackend(status=500))
    await post(chat())
    await post(chat())
    assert upstream.calls == 2


async def test_request_header_skip_refresh_and_use(fake):
    upstream = await fake()
    await post(chat())
    assert (await post(chat(), **{"x-gateway-cache": "skip"})).headers["x-cache"] == "BYPASS"
    assert (await post(chat(), **{"x-gateway-cache": "refresh"})).headers["x-cache"] == "MISS"
    assert upstream.calls == 3
    assert (await post(chat(), **{"x-gateway-cache": "use"})).headers["x-cache"] == "HIT"
    bad = await post(chat(), **{"x-gateway-cache": "always"})
    assert bad.status_code == 400 and upstream.calls == 3


async def test_models_not_listed_are_cached_only_when_the_request_asks(fake):
    upstream = await fake(CACHE_COMPLETIONS="")
    plain = [await post(chat()) for _ in range(2)]
    assert all("x-cache" not in r.headers for r in plain) and upstream.calls == 2
    await post(chat(), **{"x-gateway-cache": "use"})
    assert (await post(chat(), **{"x-gateway-cache": "use"})).headers["x-cache"] == "HIT"
    assert upstream.calls == 3


async def test_entries_are_per_client_unless_shared(fake):
    upstream = await fake()
    await post(chat(), client="198.51.100.1")
    assert (await post(chat(), client="198.51.100.2")).headers["x-cache"] == "MISS"
    assert upstream.calls == 2


async def test_shared_entries_serve_every_client(fake):
    await fake(CACHE_COMPLETIONS_SHARED="true")
    await post(chat(), client="198.51.100.1")
    assert (await post(chat(), client="198.51.100.2")).headers["x-cache"] == "HIT"


async def test_embeddings_are_cached_by_route(fake):
    upstream = await fake(CACHE_COMPLETIONS="/v1/embeddings")
    body = json.dumps({"model": "sim-python", "input": "x"}).encode()
    await post(body, "/v1/embeddings")
    assert (await post(body, "/v1/embeddings")).headers["x-cache"] == "HIT"
    assert (await post(chat())).headers.get("x-cache") is None
    assert upstream.calls == 2


async def tokens() -> dict:
    return (await read_json(await stats(make_request("GET", "/_gateway/stats"))))["tokens"]


@pytest.mark.parametrize(("charge", "completion"), [("false", 2), ("true", 4)])
async def test_a_hit_charges_no_completion_tokens_unless_set(fake, charge, completion):
    await fake(CACHE_HIT_CHARGES_TOKENS=charge)
    await read_body(await post(chat()))
    await read_body(await post(chat()))
    totals = (await tokens())["totals"]
    assert totals["prompt_tokens"] == 10 and totals["completion_tokens"] == completion


async def test_cachez_counts_completion_hits(fake):
    await fake()
    await post(chat())
    await post(chat())
    report = await read_json(await cachez(make_request("GET", "/cachez")))
    assert report["counters"]["completion_hits"] == 1 and report["hits"] == 1


async def test_the_control_header_does_not_reach_the_backend(fake, backend):
    await fake()
    await post(chat(), **{"x-gateway-cache": "refresh"})
    assert "x-gateway-cache" not in backend.seen[0].headers


class HeaderBackend(OpenAIBackend):
    """An OpenAI backend that adds `headers` to every answer (plain or streamed)."""

    def __init__(self, headers: dict[str, str]):
        super().__init__()
        self.extra = headers

    def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = super().__call__(request)
        answer.headers.update(self.extra)
        return answer


COOKIE_AND_PRIVATE = {"set-cookie": "session=victim-7f3a; HttpOnly",
                      "cache-control": "private, no-store"}


@pytest.mark.parametrize("headers", [
    COOKIE_AND_PRIVATE, {"set-cookie": "session=victim-7f3a"}, {"cache-control": "private"},
    {"cache-control": "no-store"}, {"vary": "*"}, {"vary": "accept-language"}])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("shared", ["true", "false"])
async def test_answers_not_for_sharing_are_never_replayed(fake, headers, stream, shared):
    upstream = await fake(HeaderBackend(headers), CACHE_COMPLETIONS_SHARED=shared)
    await read_body(await post(chat(stream=stream), client="198.51.100.1"))
    other = "198.51.100.2" if shared == "true" else "198.51.100.1"
    again = await post(chat(stream=stream), client=other)
    assert await read_body(again)
    assert again.headers["x-cache"] == "MISS" and upstream.calls == 2
    counters = json.loads(await read_body(await cachez(make_request("GET", "/cachez"))))
    assert counters["counters"]["completion_not_stored"] == 2
    assert counters["counters"]["completion_stored"] == 0


async def test_a_cookie_is_never_replayed_to_another_key_of_the_same_client(fake):
    upstream = await fake(HeaderBackend(COOKIE_AND_PRIVATE))
    first = await post(chat(), **{"x-api-key": "key-one"})
    second = await post(chat(), **{"x-api-key": "key-two"})
    third = await post(chat(), **{"x-api-key": "key-one"})
    assert [r.headers["x-cache"] for r in (first, second, third)] == ["MISS"] * 3
    assert upstream.calls == 3


@pytest.mark.parametrize("credential", ["authorization", "api-key", "x-api-key", "cookie"])
async def test_a_shared_entry_is_not_made_from_a_request_with_its_own_credentials(fake,
                                                                                  credential):
    upstream = await fake(CACHE_COMPLETIONS_SHARED="true")
    await post(chat(), client="198.51.100.1", **{credential: "Bearer someone-else"})
    assert (await post(chat(), client="198.51.100.2")).headers["x-cache"] == "MISS"
    assert upstream.calls == 2


async def test_a_public_answer_to_a_credentialed_request_is_shared(fake):
    upstream = await fake(HeaderBackend({"cache-control": "public, max-age=60"}),
                          CACHE_COMPLETIONS_SHARED="true")
    await post(chat(), client="198.51.100.1", authorization="Bearer someone")
    assert (await post(chat(), client="198.51.100.2")).headers["x-cache"] == "HIT"
    assert upstream.calls == 1


async def test_an_encoded_answer_is_not_stored(fake):
    import gzip

    class Gzipped(OpenAIBackend):
        def __call__(self, request):
            self.calls += 1
            return httpx.Response(200, content=gzip.compress(json.dumps(PLAIN).encode()),
                                  headers={"content-type": "application/json",
                                           "content-encoding": "gzip"})

    upstream = await fake(Gzipped())
    await read_body(await post(chat(), **{"accept-encoding": "gzip"}))
    again = await post(chat(), **{"accept-encoding": "identity"})
    assert again.headers["x-cache"] == "MISS" and upstream.calls == 2


async def test_a_vary_on_accept_encoding_of_a_plain_answer_is_stored(fake):
    upstream = await fake(HeaderBackend({"vary": "Accept-Encoding"}))
    await post(chat())
    assert (await post(chat())).headers["x-cache"] == "HIT" and upstream.calls == 1


async def post_query(body: bytes, query: str, **headers):
    return await proxy(make_request("POST", "/v1/chat/completions", body, {**JSON, **headers},
                                    query=query))


async def test_the_forwarded_query_and_host_are_part_of_the_key(fake):
    upstream = await fake()
    await post_query(chat(), "api-version=2024-10-21")
    assert (await post_query(chat(), "api-version=2024-10-21&code=fnkey")).headers[
        "x-cache"] == "HIT"
    assert (await post_query(chat(), "api-version=2025-01-01")).headers["x-cache"] == "MISS"
    assert (await post_query(chat(), "api-version=2024-10-21", host="evil.example")).headers[
        "x-cache"] == "MISS"
    assert upstream.calls == 3


async def test_a_request_rewritten_behind_the_gateway_bypasses_the_completion_cache(fake):
    upstream = await fake()
    await post(chat())
    answer = await post(chat(), **{"x-http-method-override": "DELETE"})
    assert answer.headers["x-cache"] == "BYPASS" and upstream.calls == 2


@pytest.fixture
async def tenants(backend):
    """A gateway with GATEWAY_AUTH=required and an in-memory key store; new_key(tenant)."""
    from function_app import app as app_module
    from function_app.adapters.httpx_upstream import HttpxUpstream
    from function_app.adapters.keystore_memory import MemoryKeyStore
    from function_app.core.clock import SystemClock
    from function_app.settings.load import load_settings
    from function_app.tenants.keys import generate, key_hash, prefix_of
    from function_app.tenants.records import KeyRecord
    from function_app.wiring.build import build_gateway

    store = MemoryKeyStore()

    async def _install(responder, **environ):
        backend.respond = responder
        settings = load_settings({"GATEWAY_AUTH": "required", "CACHE_COMPLETIONS": "sim-python",
                                  **environ})
        app_module.gateway.install(await build_gateway(
            settings, upstream=HttpxUpstream(httpx.MockTransport(backend)), key_store=store))

        async def new_key(tenant: str) -> str:
            key = generate()
            await store.create_key(KeyRecord(key_hash(key), prefix_of(key), tenant, "test",
                                             SystemClock().now()))
            return key

        return new_key

    yield _install
    await app_module.gateway.aclose()


@pytest.mark.parametrize("shared", ["false", "true"])
async def test_a_private_answer_reaches_no_other_key_of_the_tenant_nor_other_tenants(tenants,
                                                                                      shared):
    upstream = HeaderBackend(COOKIE_AND_PRIVATE)
    new_key = await tenants(upstream, CACHE_COMPLETIONS_SHARED=shared)
    keys = [await new_key("acme"), await new_key("acme"), await new_key("globex")]
    answers = [await post(chat(), authorization=f"Bearer {key}") for key in keys]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["x-cache"] for a in answers] == ["MISS"] * 3 and upstream.calls == 3


async def test_an_ordinary_answer_is_shared_by_the_keys_of_one_tenant_only(tenants):
    upstream = OpenAIBackend()
    new_key = await tenants(upstream)
    keys = [await new_key("acme"), await new_key("acme"), await new_key("globex")]
    answers = [await post(chat(), authorization=f"Bearer {key}") for key in keys]
    assert [a.headers["x-cache"] for a in answers] == ["MISS", "HIT", "MISS"]
    assert upstream.calls == 2
