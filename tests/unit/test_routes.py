import pytest

from function_app.core.errors import MethodNotAllowed, NotFound
from function_app.routing.routes import parse_routes

BACKENDS = {"python": "http://py", "node": "http://node", "gpu": "http://gpu"}


def table(raw=None):
    return parse_routes(raw, BACKENDS, 60)


def test_seed_routes_are_the_default():
    match = table().match("/infer/node", "POST")
    assert (match.route.backend, match.upstream_path) == ("node", "/infer")
    assert match.route.json_body


def test_unknown_path_is_not_found():
    with pytest.raises(NotFound):
        table().match("/infer/rust", "POST")


def test_wrong_method_lists_the_allowed_ones():
    with pytest.raises(MethodNotAllowed) as caught:
        table().match("/infer/python", "GET")
    assert caught.value.headers == {"Allow": "POST"}


def test_healthz_with_another_method_is_405_allow_get():
    with pytest.raises(MethodNotAllowed) as caught:
        table().match("/healthz", "POST")
    assert caught.value.allowed == ["GET"]


def test_prefix_route_appends_the_rest_of_the_path():
    routes = table([{"path": "/v1/*", "methods": ["GET", "POST"], "backend": "gpu",
                     "upstream_path": "/openai/v1"}])
    chat = routes.match("/v1/chat/completions", "POST")
    assert chat.upstream_path == "/openai/v1/chat/completions"
    assert routes.match("/v1", "GET").upstream_path == "/openai/v1"
    with pytest.raises(NotFound):
        routes.match("/v10/models", "GET")


def test_same_path_split_across_routes_by_method():
    routes = table([{"path": "/m", "methods": ["GET"], "backend": "python"},
                    {"path": "/m", "methods": ["POST"], "backend": "node"}])
    assert routes.match("/m", "POST").route.backend == "node"
    with pytest.raises(MethodNotAllowed) as caught:
        routes.match("/m", "DELETE")
    assert caught.value.allowed == ["GET", "POST"]


@pytest.mark.parametrize("entry, fragment", [
    ({"path": "nope", "backend": "python"}, "'path'"),
    ({"path": "/a", "backend": "cobol"}, "unknown backend"),
    ({"path": "/a", "backend": "python", "methods": ["FETCH"]}, "'methods'"),
    ({"path": "/a", "backend": "python", "timeout_s": 500}, "'timeout_s'"),
    ({"path": "/a", "backend": "python", "upstream_path": "x"}, "'upstream_path'"),
])
def test_bad_entries_are_named(entry, fragment):
    with pytest.raises(ValueError) as caught:
        table([entry])
    assert "route 0" in str(caught.value) and fragment in str(caught.value)


def test_a_match_found_once_is_the_one_found_again_and_failures_are_never_kept():
    routes = table([{"path": "/api/*", "methods": ["GET"], "backend": "gpu",
                     "upstream_path": "/v1"}])
    first = routes.match("/api/a/b", "GET")
    assert routes.match("/api/a/b", "GET") is first  # kept (a Match is frozen)
    assert (first.route.backend, first.upstream_path) == ("gpu", "/v1/a/b")
    for _ in range(2):  # a 404 or 405 is worked out again each time, and stored nowhere
        with pytest.raises(NotFound):
            routes.match("/nothing", "GET")
        with pytest.raises(MethodNotAllowed):
            routes.match("/api/a", "POST")
    assert ("/nothing", "GET") not in routes._found and ("/api/a", "POST") not in routes._found


def test_past_the_bound_a_match_is_still_right_and_not_stored(monkeypatch):
    from function_app.http import headers

    monkeypatch.setattr(headers, "NAMES_CACHED", 2)
    routes = table([{"path": "/api/*", "methods": ["GET"], "backend": "gpu"}])
    found = [routes.match(f"/api/{n}", "GET").upstream_path for n in range(5)]
    assert found == [routes.match(f"/api/{n}", "GET").upstream_path for n in range(5)]
    assert found[4].endswith("/4") and len(routes._found) == 2


def test_a_long_path_is_matched_but_never_takes_a_place_in_the_table():
    from function_app.http.headers import NAME_CACHED_LEN

    routes = table([{"path": "/api/*", "methods": ["GET"], "backend": "gpu"}])
    long_path = "/api/" + "x" * NAME_CACHED_LEN
    assert routes.match(long_path, "GET").upstream_path.endswith("x" * 20)
    assert (long_path, "GET") not in routes._found
    routes.match("/api/short", "GET")
    assert ("/api/short", "GET") in routes._found
