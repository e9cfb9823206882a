"""The worker's own HTTP server never redirects on a trailing slash and answers an unroutable
path in the gateway's JSON shape (function_app/worker_http.py; found by make fuzz)."""

import asyncio
import contextlib
import json
import uuid

from azure_functions_runtime import http_v2
from azurefunctions.extensions.http.fastapi import web

from function_app.worker_http import harden_worker_http, release_finished_invocations, unroutable


def test_the_extensions_app_is_built_without_slash_redirects_and_with_a_json_default():
    import function_app.app  # noqa: F401  (importing the app hardens the extension)

    app = web.WebApp().get_app()
    assert app.router.redirect_slashes is False
    assert app.router.default is unroutable
    harden_worker_http()  # a second call changes nothing
    assert web.WebApp().get_app().router.default is unroutable


async def test_an_unroutable_path_is_a_json_400():
    sent = []

    async def send(message):
        sent.append(message)

    await unroutable({"type": "http", "path": "/a\n/"}, None, send)
    start, body = sent
    assert start["status"] == 400
    assert (b"content-type", b"application/json") in start["headers"]
    error = json.loads(body["body"])["error"]
    assert error["code"] == "invalid_path"
    assert dict(start["headers"])[b"x-request-id"].decode() == error["request_id"]


async def _invocation(coordinator, invocation_id: str, http_first: bool, answer: object) -> object:
    """One HTTP invocation through the worker library's coordinator, as its two sides drive it:
    the invocation waits for the request and sets the function's answer; the HTTP route sets
    the request and waits for the answer. Returns what the route got."""
    request = object()
    if http_first:
        coordinator.set_http_request(invocation_id, request)
    waiting = asyncio.ensure_future(coordinator.get_http_request_async(invocation_id))
    await asyncio.sleep(0)
    if not http_first:
        coordinator.set_http_request(invocation_id, request)
    assert await waiting is request
    route = asyncio.ensure_future(coordinator.await_http_response_async(invocation_id))
    await asyncio.sleep(0)
    coordinator.set_http_response(invocation_id, answer)
    return await route


async def test_the_worker_library_forgets_an_invocation_once_its_answer_is_taken():
    import function_app.app  # noqa: F401  (importing the app releases finished invocations)

    coordinator = http_v2.HttpCoordinator()  # the library's singleton
    release_finished_invocations()  # a second call wraps nothing twice
    ids = [uuid.uuid4().hex for _ in range(40)]
    answers = [object() if n % 4 else ValueError("function failed") for n in range(40)]
    got = await asyncio.gather(*(_invocation(coordinator, i, n % 2 == 0, answers[n])
                                 for n, i in enumerate(ids)))
    assert got == answers  # every route got its own invocation's answer, errors included
    assert not set(ids) & set(coordinator._context_references)  # was: one entry per request


async def test_an_answer_still_waited_for_keeps_its_entry():
    import function_app.app  # noqa: F401

    coordinator = http_v2.HttpCoordinator()
    invocation_id = uuid.uuid4().hex
    coordinator.set_http_request(invocation_id, object())
    route = asyncio.ensure_future(coordinator.await_http_response_async(invocation_id))
    await asyncio.sleep(0)
    assert invocation_id in coordinator._context_references  # the invocation sets it later
    route.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await route
    coordinator.set_http_response(invocation_id, object())  # a late answer finds its entry
    coordinator._context_references.pop(invocation_id)
