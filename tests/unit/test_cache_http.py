"""The GET cache through the registered handlers, with a fake backend and a fake clock."""

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from function_app import app as app_module
from function_app.adapters.httpx_upstream import HttpxUpstream
from function_app.app import cachez, proxy, stats
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway
from tests.support.clock import FakeClock, settle
from tests.support.handler_calls import make_request, read_body, read_json

from .conftest import Backend


@pytest.fixture
async def gw():
    """install(respond=..., **env) -> (backend, clock); rate limits off unless asked."""

    async def _install(respond=None, **environ):
        backend = Backend(respond or (lambda r: httpx.Response(200, json={"n": len(seen)})))
        seen = backend.seen
        clock = FakeClock()
        settings = load_settings({"RATE_LIMIT_ENABLED": "false", **environ})
        upstream = HttpxUpstream(httpx.MockTransport(backend))
        app_module.gateway.install(await build_gateway(settings, upstream=upstream, clock=clock))
        return backend, clock

    yield _install
    await app_module.gateway.aclose()


async def get(path="/slow", query="", client="198.51.100.4", method="GET", **headers):
    return await proxy(make_request(method, path, headers=headers, query=query, client=client))


async def test_a_second_get_is_a_hit_with_age_and_max_age(gw):
    backend, clock = await gw()
    first = await get()
    await clock.advance(7)
    second = await get()
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert len(backend.seen) == 1 and str(backend.seen[0].url).endswith("/slow")
    assert await read_body(first) == await read_body(second)
    assert second.headers["age"] == "7"
    assert first.headers["cache-control"] == second.headers["cache-control"] == "max-age=30"


async def test_an_entry_expires_after_the_ttl(gw):
    backend, clock = await gw(CACHE_TTL_SECONDS="10")
    await get()
    await clock.advance(10)
    assert (await get()).headers["x-cache"] == "MISS"
    assert len(backend.seen) == 2


async def test_upstream_max_age_and_age_set_the_freshness(gw):
    _backend, clock = await gw(respond=lambda r: httpx.Response(
        200, json={}, headers={"cache-control": "max-age=5", "age": "2"}))
    await get()
    await clock.advance(2)
    hit = await get()
    assert hit.headers["x-cache"] == "HIT" and hit.headers["age"] == "4"
    await clock.advance(1)
    assert (await get()).headers["x-cache"] == "MISS"


@pytest.mark.parametrize("directive", ["no-store", "private", "no-cache"])
async def test_answers_that_forbid_storing_are_not_stored(gw, directive):
    backend, _ = await gw(respond=lambda r: httpx.Response(
        200, json={}, headers={"cache-control": directive}))
    await get()
    assert (await get()).headers["x-cache"] == "MISS"
    assert len(backend.seen) == 2


async def test_errors_are_not_stored(gw):
    backend, _ = await gw(respond=lambda r: httpx.Response(503, json={}))
    await get()
    first = len(backend.seen)  # the upstream step may retry a 503 within its budget
    await get()
    assert first >= 1 and len(backend.seen) == 2 * first


async def test_request_no_store_bypasses_and_no_cache_refreshes(gw):
    backend, _ = await gw()
    await get()
    assert (await get(**{"cache-control": "no-store"})).headers["x-cache"] == "BYPASS"
    assert (await get(**{"cache-control": "no-cache"})).headers["x-cache"] == "MISS"
    assert len(backend.seen) == 3
    assert (await get()).headers["x-cache"] == "HIT"


async def test_request_max_age_refuses_older_entries(gw):
    _backend, clock = await gw()
    await get()
    await clock.advance(5)
    assert (await get(**{"cache-control": "max-age=2"})).headers["x-cache"] == "MISS"
    assert (await get(**{"cache-control": "max-age=9"})).headers["x-cache"] == "HIT"


@pytest.mark.parametrize("credential", ["authorization", "api-key", "x-api-key"])
async def test_credentialed_requests_bypass_a_shared_route(gw, credential):
    backend, _ = await gw()
    await get()
    answer = await get(**{credential: "Bearer secret"})
    assert answer.headers["x-cache"] == "BYPASS" and len(backend.seen) == 2


async def test_a_per_client_route_caches_credentialed_requests_per_client(gw):
    backend, _ = await gw(CACHE_ROUTES=json.dumps({"/slow": "per-client"}))
    a1 = await get(client="198.51.100.1", authorization="Bearer a")
    a2 = await get(client="198.51.100.1", authorization="Bearer a")
    b1 = await get(client="198.51.100.2", authorization="Bearer b")
    assert [r.headers["x-cache"] for r in (a1, a2, b1)] == ["MISS", "HIT", "MISS"]
    assert len(backend.seen) == 2


async def test_a_route_turned_off_is_not_cached(gw):
    backend, _ = await gw(CACHE_ROUTES=json.dumps({"/slow": "off"}))
    await get()
    answer = await get()
    assert "x-cache" not in answer.headers and len(backend.seen) == 2


@pytest.mark.parametrize("query", ["CODE=other", "Code=x", "code=y&"])
async def test_the_function_key_does_not_split_entries(gw, query):
    _backend, _ = await gw()
    await get(query="code=first")
    assert (await get(query=query)).headers["x-cache"] == "HIT"
    assert (await get(query="page=2")).headers["x-cache"] == "MISS"


async def test_vary_selects_by_the_named_request_header(gw):
    backend, _ = await gw(respond=lambda r: httpx.Response(
        200, json={"lang": r.headers.get("accept-language")}, headers={"vary": "Accept-Language"}))
    await get(**{"accept-language": "fr"})
    same = await get(**{"accept-language": "fr"})
    other = await get(**{"accept-language": "de"})
    assert same.headers["x-cache"] == "HIT" and other.headers["x-cache"] == "MISS"
    assert (await read_json(other))["lang"] == "de"
    # Both variants are held at once: neither pushed the other out.
    for lang in ("fr", "de", "fr"):
        answer = await get(**{"accept-language": lang})
        assert answer.headers["x-cache"] == "HIT" and (await read_json(answer))["lang"] == lang
    assert len(backend.seen) == 2


async def test_head_is_answered_from_the_get_entry_and_fills_it(gw):
    backend, _ = await gw()
    head = await get(method="HEAD")
    assert head.headers["x-cache"] == "MISS" and await read_body(head) == b""
    assert backend.seen[0].method == "GET"
    hit = await get()
    assert hit.headers["x-cache"] == "HIT" and await read_json(hit) == {"n": 1}
    assert (await get(method="HEAD")).headers["x-cache"] == "HIT"


async def test_a_body_over_the_entry_limit_is_passed_whole_and_not_stored(gw):
    backend, _ = await gw(CACHE_MAX_ENTRY_BYTES="100",
                          respond=lambda r: httpx.Response(200, content=b"z" * 5000))
    first = await get()
    assert await read_body(first) == b"z" * 5000
    await get()
    assert len(backend.seen) == 2


async def held_gets(gw, answer: Callable[[int], httpx.Response], n: int
                    ) -> tuple[int, list]:
    """`n` identical GETs at once to a backend that holds every call until all are sent, then
    answers `answer(calls so far)`; how many calls reached it, and the answers."""
    release = asyncio.Event()
    calls = 0

    async def held(request):
        nonlocal calls
        calls += 1
        await release.wait()
        return answer(calls)

    await gw(respond=held)
    tasks = [asyncio.create_task(get()) for _ in range(n)]
    await settle(50)
    release.set()
    answers = await asyncio.gather(*tasks)
    return calls, answers


async def test_concurrent_identical_misses_make_one_upstream_call(gw):
    calls, answers = await held_gets(gw, lambda _: httpx.Response(200, json={"slow": True}), 20)
    assert calls == 1
    assert sorted(a.headers["x-cache"] for a in answers) == ["HIT"] * 19 + ["MISS"]
    assert [await read_json(a) for a in answers] == [{"slow": True}] * 20
    report = await read_json(await cachez(make_request("GET", "/cachez")))
    assert report["coalesced"] == 19 and report["hits"] == 19 and report["misses"] == 1


async def test_cachez_and_stats_report_the_counters(gw):
    await gw()
    await get()
    await get()
    report = await read_json(await cachez(make_request("GET", "/cachez")))
    assert {k: report[k] for k in ("hits", "misses", "hit_ratio", "backend", "ttl")} == {
        "hits": 1, "misses": 1, "hit_ratio": 0.5, "backend": "memory", "ttl": 30}
    memory = report["tiers"]["memory"]
    assert memory["entries"] == 1 and 0 < memory["bytes"] <= memory["budget_bytes"]
    assert "evictions" in memory
    gateway_stats = await read_json(await stats(make_request("GET", "/_gateway/stats")))
    assert gateway_stats["cache"]["hits"] == 1


async def test_a_hit_still_counts_against_the_rate_limit_and_carries_its_headers(install,
                                                                                 backend):
    await install(CLIENT_RPS="1", CLIENT_BURST="2", GLOBAL_RPS="0")
    first = await get()
    hit = await get()
    limited = await get()
    assert hit.headers["x-cache"] == "HIT"
    assert hit.headers["x-ratelimit-limit"] and hit.headers["ratelimit"]
    assert limited.status_code == 429 and len(backend.seen) == 1
    assert first.headers["x-ratelimit-remaining"] != hit.headers["x-ratelimit-remaining"]


async def test_limited_answers_ok_itself_with_rate_limit_headers(install, backend):
    await install()
    answer = await get("/limited")
    assert answer.status_code == 200 and await read_json(answer) == {"ok": True}
    assert answer.headers["x-ratelimit-limit"] and backend.seen == []
    assert "x-cache" not in answer.headers


async def test_a_streamed_body_passes_chunk_by_chunk_and_is_stored_once_whole(gw):
    release = asyncio.Event()

    async def chunks():
        yield b'{"part": '
        await release.wait()
        yield b'"two"}'

    backend, _ = await gw(respond=lambda r: httpx.Response(
        200, headers={"content-type": "application/json"}, content=chunks()))
    first = await get()
    body = first.body_iterator
    assert await anext(body) == b'{"part": '  # before the upstream has finished
    release.set()
    assert [chunk async for chunk in body] == [b'"two"}']
    hit = await get()
    assert hit.headers["x-cache"] == "HIT" and await read_json(hit) == {"part": "two"}
    assert len(backend.seen) == 1


async def test_an_event_stream_on_a_get_route_is_never_stored(gw):
    async def events():
        yield b"data: 1\n\n"

    backend, _ = await gw(respond=lambda r: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=events()))
    for _ in range(2):
        answer = await get()
        assert answer.headers["x-cache"] == "MISS"
        assert b"".join([c async for c in answer.body_iterator]) == b"data: 1\n\n"
    assert len(backend.seen) == 2


async def test_followers_of_an_unstorable_answer_each_fetch_without_error(gw):
    calls, answers = await held_gets(gw, lambda n: httpx.Response(
        200, json={"n": n}, headers={"cache-control": "private"}), 5)
    assert calls == 5 and all(a.status_code == 200 for a in answers)
    assert {a.headers["x-cache"] for a in answers} == {"MISS"}


async def test_per_client_entries_are_split_by_credential_behind_one_address(gw):
    backend, _ = await gw(CACHE_ROUTES=json.dumps({"/slow": "per-client"}))
    await get(authorization="Bearer a")
    assert (await get(authorization="Bearer b")).headers["x-cache"] == "MISS"
    assert (await get(authorization="Bearer a")).headers["x-cache"] == "HIT"
    assert len(backend.seen) == 2


def negotiating(request: httpx.Request) -> httpx.Response:
    """A backend that gzips when asked and builds links from the forwarded host, and forgets
    to say Vary for either (issue 22 item 7)."""
    import gzip

    body = json.dumps({"link": f"https://{request.headers.get('x-forwarded-host')}/next"})
    if "gzip" in request.headers.get("accept-encoding", ""):
        return httpx.Response(200, content=gzip.compress(body.encode()),
                              headers={"content-type": "application/json",
                                       "content-encoding": "gzip"})
    return httpx.Response(200, content=body.encode(), headers={"content-type": "application/json"})


async def test_an_answer_for_gzip_is_never_replayed_to_a_client_asking_for_identity(gw):
    backend, _ = await gw(respond=negotiating)
    zipped = await get(**{"accept-encoding": "gzip"})
    plain = await get(**{"accept-encoding": "identity"})
    bare = await get()
    assert zipped.headers["content-encoding"] == "gzip"
    assert [r.headers["x-cache"] for r in (zipped, plain, bare)] == ["MISS", "MISS", "HIT"]
    assert "content-encoding" not in plain.headers and "content-encoding" not in bare.headers
    assert (await read_json(bare))["link"].startswith("https://")
    again = await get(**{"accept-encoding": "GZIP"})
    assert again.headers["x-cache"] == "HIT" and again.headers["content-encoding"] == "gzip"
    assert len(backend.seen) == 2


async def test_an_answer_built_for_a_client_sent_host_is_not_served_to_the_next_client(gw):
    backend, _ = await gw(respond=negotiating)
    poisoned = await get(host="evil.example")
    honest = await get(host="gateway.test")
    assert (await read_json(poisoned))["link"] == "https://evil.example/next"
    assert honest.headers["x-cache"] == "MISS"
    assert (await read_json(honest))["link"] == "https://gateway.test/next"
    assert (await get(host="gateway.test")).headers["x-cache"] == "HIT"
    assert len(backend.seen) == 2


async def test_a_request_with_a_cookie_bypasses_a_shared_route(gw):
    backend, _ = await gw()
    await get()
    with_cookie = await get(cookie="session=abc")
    assert with_cookie.headers["x-cache"] == "BYPASS" and len(backend.seen) == 2


async def test_a_per_client_route_keys_cookies_with_the_client(gw):
    backend, _ = await gw(CACHE_ROUTES=json.dumps({"/slow": "per-client"}))
    a = await get(cookie="session=a")
    b = await get(cookie="session=b")
    a_again = await get(cookie="session=a")
    assert [r.headers["x-cache"] for r in (a, b, a_again)] == ["MISS", "MISS", "HIT"]
    assert len(backend.seen) == 2


@pytest.mark.parametrize("header", ["x-original-url", "x-rewrite-url", "x-forwarded-prefix",
                                    "x-http-method-override", "forwarded", "x-host"])
async def test_headers_that_rewrite_a_request_behind_the_gateway_bypass(gw, header):
    backend, _ = await gw()
    await get()
    answer = await get(**{header: "/admin"})
    assert answer.headers["x-cache"] == "BYPASS" and len(backend.seen) == 2
    assert (await get()).headers["x-cache"] == "HIT"


async def test_vary_star_is_never_stored(gw):
    backend, _ = await gw(respond=lambda r: httpx.Response(200, json={}, headers={"vary": "*"}))
    await get()
    assert (await get()).headers["x-cache"] == "MISS" and len(backend.seen) == 2


async def test_a_trusted_proxys_forwarded_host_and_proto_are_part_of_the_key(gw):
    backend, _ = await gw(respond=negotiating, TRUSTED_PROXIES="198.51.100.0/24")
    poisoned = await get(**{"x-forwarded-host": "evil.example"})
    other_proto = await get(**{"x-forwarded-proto": "https"})
    honest = await get()
    assert (await read_json(poisoned))["link"] == "https://evil.example/next"
    assert [r.headers["x-cache"] for r in (poisoned, other_proto, honest)] == ["MISS"] * 3
    assert (await read_json(honest))["link"] != "https://evil.example/next"
    assert len(backend.seen) == 3


async def test_a_vary_on_a_header_the_gateway_writes_separates_what_the_backend_saw(gw):
    backend, _ = await gw(respond=lambda r: httpx.Response(
        200, json={"for": r.headers["x-forwarded-for"]}, headers={"vary": "X-Forwarded-For"}))
    first = await get(client="198.51.100.1")
    other = await get(client="198.51.100.2")
    again = await get(client="198.51.100.1")
    assert [r.headers["x-cache"] for r in (first, other, again)] == ["MISS", "MISS", "HIT"]
    assert (await read_json(other))["for"] == "198.51.100.2"
    assert (await read_json(again))["for"] == "198.51.100.1"
    assert len(backend.seen) == 2


async def test_the_headers_a_vary_is_judged_on_are_those_the_backend_received(gw):
    from function_app.cache.inputs import as_sent
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayRequest

    backend, _ = await gw(CACHE_ROUTES=json.dumps({"/slow": "off"}))
    headers = {"host": "gw.test", "accept-language": "fr", "x-request-id": "req-42"}
    await get(**headers)
    # Host and User-Agent are the HTTP client's own; traceparent is written per attempt (an
    # answer varying on it is never stored, below).
    received = {k.lower(): v for k, v in backend.seen[0].headers.items()
                if k.lower() not in ("host", "user-agent", "traceparent")}
    request = GatewayRequest("GET", "/slow", "", Headers(list(headers.items())), b"",
                             "198.51.100.4", request_id="req-42")
    assert dict(as_sent(request)) == received


@pytest.mark.parametrize("name", ["traceparent", "X-Request-ID"])
async def test_an_answer_varying_on_what_the_gateway_writes_per_request_is_not_stored(gw, name):
    backend, _ = await gw(respond=lambda r: httpx.Response(200, json={}, headers={"vary": name}))
    await get()
    assert (await get()).headers["x-cache"] == "MISS" and len(backend.seen) == 2
