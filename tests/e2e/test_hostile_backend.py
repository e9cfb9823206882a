"""Issue 22 items 2, 5 and 7 against the real stack: the local host and the real worker in front
of a hostile backend (tests/support/scripted_backend.py) that answers what each URL tells it,
so a test can make it send cookies, forget Vary, or stream a 10 MB event without a blank line."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid

import httpx
import pytest

from tests.support.scripted_backend import script_query

from .conftest import start_gateway, support_server

pytestmark = pytest.mark.e2e

MODEL = "hostile"
HEAD = {"id": "chatcmpl-h", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
FIRST = b"data: " + json.dumps({**HEAD, "choices": [
    {"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]}
).encode() + b"\n\n"
LAST = b"data: " + json.dumps({**HEAD, "choices": [
    {"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode() + b"\n\n"
DONE = b"data: [DONE]\n\n"
PLAIN = json.dumps({"id": "chatcmpl-h", "object": "chat.completion", "created": 1,
                    "model": MODEL, "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant",
                                                             "content": "Hi"}}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                              "total_tokens": 4}}).encode()
COOKIE = [("set-cookie", "session=victim-7f3a; HttpOnly"), ("cache-control", "private, no-store")]


scripted = support_server("scripted_backend", "hostile-scripted-backend")


@pytest.fixture(scope="module")
def gateway(scripted, log_dir):
    routes = [{"path": "/scripted/*", "methods": ["GET", "HEAD"], "backend": "scripted",
               "upstream_path": "/s"}]
    proc = start_gateway(log_dir, "hostile-backend-gateway", {
        "PY_SERVICE_URL": scripted.url, "NODE_SERVICE_URL": scripted.url,
        "GATEWAY_BACKENDS": json.dumps({"scripted": scripted.url}),
        "GATEWAY_ROUTES": json.dumps(routes), "MODEL_ROUTES": json.dumps({MODEL: scripted.url}),
        "CACHE_COMPLETIONS": MODEL, "CACHE_COMPLETIONS_SHARED": "true",
        # Test clients stand in for a trusted front door: X-Forwarded-For names the client,
        # X-Forwarded-Host is kept and forwarded.
        "TRUSTED_PROXIES": "127.0.0.1/32", "RATE_LIMIT_ENABLED": "false",
        "UPSTREAM_TIMEOUT_S": "60", "HEALTH_CACHE_S": "0"})
    yield proc
    proc.stop()


def seen(scripted, ident: str) -> list[dict]:
    everything = httpx.get(f"{scripted.url}/_seen", timeout=5).json()
    return [request for request in everything if f"id={ident}&" in request["target"]]


def chat(ident: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": ident}], **extra}


# Item 2: the completion cache replays only what may be shared.

@pytest.mark.parametrize("stream", [False, True])
def test_a_private_answer_with_a_cookie_is_never_replayed_to_another_client(gateway, scripted,
                                                                            stream):
    ident = f"cookie-{uuid.uuid4().hex[:8]}"
    if stream:
        script = script_query(ident, headers=[("content-type", "text/event-stream"), *COOKIE],
                              chunks=[FIRST, LAST, DONE])
    else:
        script = script_query(ident, headers=[("content-type", "application/json"), *COOKIE],
                              chunks=[PLAIN])
    answers = [httpx.post(f"{gateway.url}/v1/chat/completions?{script}",
                          json=chat(ident, stream=stream), timeout=10,
                          headers={"x-forwarded-for": client})
               for client in ("203.0.113.1", "203.0.113.2")]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.headers["x-cache"] for a in answers] == ["MISS", "MISS"]
    assert len(seen(scripted, ident)) == 2  # the second tenant got the backend's own answer
    counters = httpx.get(f"{gateway.url}/cachez", timeout=5).json()["counters"]
    assert counters["completion_not_stored"] >= 2


# Item 7: the GET cache keys what the gateway forwards, or bypasses.

def test_a_gzip_answer_without_vary_is_not_replayed_to_a_client_asking_for_identity(gateway,
                                                                                     scripted):
    ident = f"gzip-{uuid.uuid4().hex[:8]}"
    script = script_query(ident, headers=[("content-type", "application/json"),
                                          ("content-encoding", "gzip")],
                          chunks=[gzip.compress(b'{"n": 1}')])
    url = f"{gateway.url}/scripted/x?{script}"
    zipped = httpx.get(url, headers={"accept-encoding": "gzip"}, timeout=5)
    plain = httpx.get(url, headers={"accept-encoding": "identity"}, timeout=5)
    again = httpx.get(url, headers={"accept-encoding": "gzip"}, timeout=5)
    assert [r.headers["x-cache"] for r in (zipped, plain, again)] == ["MISS", "MISS", "HIT"]
    assert [r["headers"]["accept-encoding"] for r in seen(scripted, ident)] == [
        "gzip", "identity"]


def test_an_answer_for_a_client_sent_host_is_not_served_to_the_next_client(gateway, scripted):
    # The Functions host sets X-Forwarded-Host from the Host it saw (a client's own is
    # replaced there), so the Host header is what a client chooses; the unit tests cover a
    # trusted proxy's X-Forwarded-Host.
    ident = f"host-{uuid.uuid4().hex[:8]}"
    url = f"{gateway.url}/scripted/x?" + script_query(
        ident, headers=[("content-type", "application/json")], chunks=[b'{"n": 1}'])
    poisoned = httpx.get(url, headers={"host": "evil.example"}, timeout=5)
    honest = httpx.get(url, timeout=5)
    assert [r.headers["x-cache"] for r in (poisoned, honest)] == ["MISS", "MISS"]
    forwarded = [r["headers"]["x-forwarded-host"] for r in seen(scripted, ident)]
    assert forwarded[0] == "evil.example" and forwarded[1] != "evil.example"


def test_a_request_with_a_cookie_bypasses_the_get_cache(gateway, scripted):
    ident = f"cookie-get-{uuid.uuid4().hex[:8]}"
    url = f"{gateway.url}/scripted/x?" + script_query(
        ident, headers=[("content-type", "application/json")], chunks=[b'{"n": 1}'])
    first = httpx.get(url, timeout=5)
    with_cookie = httpx.get(url, headers={"cookie": "session=someone"}, timeout=5)
    assert (first.headers["x-cache"], with_cookie.headers["x-cache"]) == ("MISS", "BYPASS")
    assert len(seen(scripted, ident)) == 2


# Item 5: an event without an end is cut at SSE_MAX_EVENT_BYTES; the gateway stays responsive.

async def huge_event(client: httpx.AsyncClient, ident: str) -> bytes:
    script = script_query(ident, headers=[("content-type", "text/event-stream")],
                          chunks=[FIRST, b'data: {"choices": [{"delta": {"content": "'],
                          fill=10 * 1024 * 1024, end="stall")
    async with client.stream("POST", f"/v1/chat/completions?{script}",
                             json=chat(ident, stream=True)) as response:
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def test_a_10_mb_event_without_a_blank_line_ends_with_an_error_event(gateway, scripted):
    idents = [f"huge-{i}-{uuid.uuid4().hex[:8]}" for i in range(2)]
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as client:
        streams = [asyncio.create_task(huge_event(client, ident)) for ident in idents]
        health = []
        while not all(task.done() for task in streams):
            health.append((await client.get("/healthz", timeout=10)).status_code)
            await asyncio.sleep(0.05)
        bodies = [task.result() for task in streams]
    for body in bodies:
        assert body.startswith(FIRST) and len(body) < 64 * 1024  # the event never got through
        last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
        assert last.startswith(b"data: ")
        error = json.loads(last[len(b"data: "):])["error"]
        assert error["code"] == "upstream_event_too_large" and error["type"] == "server_error"
    assert health and set(health) == {200}
    async with httpx.AsyncClient(base_url=scripted.url, timeout=5) as backend:
        for _ in range(200):  # the gateway let go of both backend answers, long before 10 MB
            released = (await backend.get("/_released")).json()
            if set(idents) <= set(released):
                break
            await asyncio.sleep(0.05)
    assert set(idents) <= set(released)
    log = gateway.log.read_text(errors="replace")
    assert "upstream_event_too_large" in log and "Traceback" not in log
