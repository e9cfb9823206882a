"""Hardening of the worker's own HTTP server (azurefunctions-extensions-http-fastapi).

The extension serves every HTTP function through one FastAPI catch-all, `/{path:path}`, whose
pattern does not match a path holding a newline (Starlette compiles it without DOTALL). An
unmatched request then got FastAPI's slash redirect, a 307 whose Location is built from the
client's Host header, or a plain-text 404; the gateway's pipeline never saw it. Found by
`make fuzz`. The worker builds that app after it has indexed (imported) this app, from the
`FastAPI` name in the extension's `web` module, so that name is wrapped here: no slash
redirects, and a request the catch-all cannot match gets the gateway's JSON 400.
"""

from __future__ import annotations

import json
import uuid

from azurefunctions.extensions.http.fastapi import web


def harden_worker_http() -> None:
    """Idempotent; call at import of the app, before the worker starts its HTTP server."""
    original = web.FastAPI
    if getattr(original, "gateway_hardened", False):
        return

    def factory(*args, **kwargs):
        app = original(*args, **{**kwargs, "redirect_slashes": False})
        app.router.default = unroutable
        return app

    factory.gateway_hardened = True  # type: ignore[attr-defined]
    web.FastAPI = factory


async def unroutable(scope, receive, send) -> None:
    """The gateway's error shape for a path the worker's router cannot match."""
    request_id = uuid.uuid4().hex
    body = json.dumps({"error": {"code": "invalid_path", "request_id": request_id,
                                 "message": "The request path cannot be routed."}}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"),
                            (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": body})
