"""The worker's own HTTP server never redirects on a trailing slash and answers an unroutable
path in the gateway's JSON shape (function_app/worker_http.py; found by make fuzz)."""

import json

from azurefunctions.extensions.http.fastapi import web

from function_app.worker_http import harden_worker_http, unroutable


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
