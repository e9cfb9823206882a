"""The local host serves every registered function and nothing else, through the same handlers."""

import azure.functions as func
import httpx
from azurefunctions.extensions.http.fastapi import JSONResponse, Request

from function_app.devhost import build_host, http_functions, starlette_path


def sample_app():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items/{id:int}", methods=["GET"])
    async def item(req: Request) -> JSONResponse:
        return JSONResponse({"fn": "item", "id": req.path_params["id"]})

    @app.route(route="{*rest}", methods=["POST"])
    async def catch_all(req: Request) -> JSONResponse:
        return JSONResponse({"fn": "catch_all", "rest": req.path_params["rest"]})

    @app.route(route="ping", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    async def ping(req: Request) -> JSONResponse:
        return JSONResponse({"fn": "ping"})

    return app


def test_routes_come_from_the_registered_functions_only():
    host = build_host(sample_app())
    served = [(r.path, set(r.methods) - {"HEAD"}, r.name) for r in host.routes]
    # Literal routes first, catch-alls last, as ASP.NET routing tries them.
    assert served == [("/ping", {"GET"}, "ping"), ("/items/{id}", {"GET"}, "item"),
                      ("/{rest:path}", {"POST"}, "catch_all")]


async def test_each_function_answers_through_its_own_handler():
    transport = httpx.ASGITransport(app=build_host(sample_app()))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/ping")).json() == {"fn": "ping"}
        assert (await client.get("/items/7")).json() == {"fn": "item", "id": "7"}
        assert (await client.post("/a/b")).json() == {"fn": "catch_all", "rest": "a/b"}
        assert (await client.delete("/ping")).status_code == 405


def test_the_real_app_is_served_as_registered():
    from main import app

    host_paths = {r.path for r in build_host(app).routes}
    assert host_paths == {"/healthz", "/_gateway/stats", "/cachez", "/metrics",
                          "/_gateway/dashboard", "/{path:path}"}


def test_route_templates_translate_to_starlette_paths():
    assert starlette_path("healthz") == "/healthz"
    assert starlette_path("{*path}") == "/{path:path}"
    assert starlette_path("a/{b?}/{c:int}") == "/a/{b}/{c}"


def test_http_functions_reads_auth_levels():
    levels = {f.name: f.auth_level for f in http_functions(sample_app())}
    assert levels == {"item": "function", "catch_all": "function", "ping": "anonymous"}
