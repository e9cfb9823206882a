"""A local host for the functions registered on the FunctionApp (development only).

Functions Core Tools cannot be installed on every machine, so this serves exactly what
`app.get_functions()` reports (each HTTP trigger's route, methods and handler) on uvicorn, with the
same handler code that runs in Azure. It does not enforce function keys, as `func start` does not.
Run: `python -m function_app.devhost` (PORT, default 7071).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import azure.functions as func
from starlette.requests import Request
from starlette.routing import Route, Router

from .core.settings import SettingsError, load_settings

log = logging.getLogger("devhost")


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    handler: Callable


@functools.cache
def http_functions(app: func.FunctionApp) -> tuple[HttpFunction, ...]:
    """Every HTTP-triggered function registered on `app`, from the library's own metadata.

    Cached per app: `get_functions()` raises when called twice on the same app.
    """
    found = []
    for function in app.get_functions():
        for binding in function.get_bindings():
            if binding.type == "httpTrigger":
                methods = tuple(str(getattr(m, "value", m)) for m in binding.methods or ())
                level = getattr(binding.auth_level, "value", binding.auth_level)
                found.append(HttpFunction(function.get_function_name(), binding.route, methods,
                                          str(level).lower(), function.get_user_function()))
    return tuple(found)


def starlette_path(template: str) -> str:
    """An ASP.NET route template as a Starlette path: `{*rest}` -> `{rest:path}`, `{id:int}` and
    `{id?}` -> `{id}`."""
    path = re.sub(r"\{\*(\w+)\}", r"{\1:path}", template)
    path = re.sub(r"\{(\w+)(?:\?|:(?!path\})[^}]*)\}", r"{\1}", path)
    return "/" + path.lstrip("/")


def _precedence(function: HttpFunction) -> tuple[bool, bool, str]:
    # ASP.NET tries literal segments before parameters and catch-alls; Starlette tries in order.
    return "{*" in function.route, "{" in function.route, function.route


class _Endpoint:
    """A handler as a bare ASGI app: request in, its response out.

    Starlette wraps function endpoints in exception-handling layers that cost about a sixth of
    the proxy's CPU; the handlers never raise (their error stage answers), so none is needed.
    """

    def __init__(self, handler: Callable):
        self.handler = handler

    async def __call__(self, scope, receive, send) -> None:
        response = await self.handler(Request(scope, receive))
        await response(scope, receive, send)


def build_host(app: func.FunctionApp, lifespan=None) -> Router:
    routes = [Route(starlette_path(f.route), _Endpoint(f.handler), methods=list(f.methods),
                    name=f.name) for f in sorted(http_functions(app), key=_precedence)]
    return Router(routes=routes, lifespan=lifespan)


def main() -> None:
    import uvicorn

    from function_app.app import gateway
    from main import app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        sys.exit(f"devhost: {exc}")

    @contextlib.asynccontextmanager
    async def lifespan(_):
        try:
            await gateway.get()  # fail at start, not on the first request
        except SettingsError as exc:
            log.error("%s", exc)
            raise SystemExit(2) from None
        yield
        await gateway.aclose()

    host = build_host(app, lifespan)
    # proxy_headers off: the gateway applies its own trusted-proxy rule to X-Forwarded-For
    # (TRUSTED_PROXIES); uvicorn's would rewrite the peer address before that rule runs.
    uvicorn.run(host, host="127.0.0.1", port=settings.port, log_level="warning",
                access_log=False, lifespan="on", proxy_headers=False)


if __name__ == "__main__":
    main()
