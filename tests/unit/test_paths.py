"""The path rules on raw, still-encoded paths (core/paths.py)."""

import pytest

from function_app.core.errors import InvalidPath
from function_app.core.paths import forward_path, parse_path, safe_query, stays_under

REFUSED = [
    "/echo/a/../../admin", "/echo/%2e%2e/%2e%2e/admin", "/echo/..%2f..%2fadmin",
    "/echo/%2E%2E/admin", "/echo/.%2e/admin", "/echo/./x", "/echo/%2e",
    "/echo/x%3Fcode=SMUGGLED", "/echo/x%23frag", "/echo/a%2fb", "/echo/a%2Fb", "/echo/a%5cb",
    "/echo/a\\b", "/echo/a%00b", "/echo/a%0db", "/echo/a%0ab", "/echo/a%7fb", "/echo/a\x00b",
    "/echo/a\tb", "/echo/%252e%252e/admin", "/echo/%25%32%65", "/echo/%zz", "/echo/%4",
    "/echo/%", "/echo/%EF%BC%8E%EF%BC%8E/admin", "echo/no-leading-slash",
]


@pytest.mark.parametrize("raw", REFUSED)
def test_hostile_paths_are_refused(raw):
    with pytest.raises(InvalidPath) as caught:
        parse_path(raw)
    assert caught.value.status == 400 and caught.value.code == "invalid_path"


def test_escapes_are_kept_and_other_bytes_encoded():
    safe = parse_path("/echo/a%20b/caf\xc3\xa9/x y/%41")
    assert safe.raw == ("echo", "a%20b", "caf%C3%A9", "x%20y", "%41")
    assert safe.decoded == "/echo/a b/café/x y/A"


def test_dots_inside_a_segment_are_ordinary():
    assert parse_path("/echo/v1.2/..x/x..").decoded == "/echo/v1.2/..x/x.."


def test_forward_path_appends_the_raw_rest_under_the_upstream_prefix():
    safe = parse_path("/echo/a%20b/c")
    assert forward_path("/internal/echo", "/echo", safe) == "/internal/echo/a%20b/c"
    assert forward_path("/", "/sim", parse_path("/sim/v1/models")) == "/v1/models"
    assert forward_path("/internal/echo", "/echo", parse_path("/echo")) == "/internal/echo"


def test_the_final_check_catches_what_would_escape():
    assert stays_under("/internal/echo/a", "/internal/echo")
    assert not stays_under("/internal/echo/..%2f..%2fadmin", "/internal/echo")
    assert not stays_under("/internal/echo/..\\admin", "/internal/echo")
    assert not stays_under("/internal/echoes", "/internal/echo")


def test_query_keeps_its_escapes_and_encodes_fragments_and_controls():
    assert safe_query("a=1&b=%20x") == "a=1&b=%20x"
    assert safe_query("a=1#frag") == "a=1%23frag"
    assert safe_query("a=\xff") == "a=%FF"
