"""core/json_object.check_json_object calls json's C scanner between the whitespace skips
JSONDecoder.decode makes; every body gets the answer (value or error class) json.loads gave."""

import json
import re

import pytest

from function_app.core.errors import BadRequest, InvalidJson, JsonTooDeep
from function_app.core.json_object import MAX_JSON_DEPTH, check_json_object, json_depth

_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _before(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """check_json_object as it was, with json.loads."""
    try:
        decoded = json.loads(body.decode("utf-8"))
        if _SURROGATE.search(body):
            json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise JsonTooDeep() from None
    except (ValueError, UnicodeError):
        raise InvalidJson() from None
    if not isinstance(decoded, dict):
        raise BadRequest("The request body must be a JSON object.")
    if body.count(b"{") + body.count(b"[") > max_depth and json_depth(decoded) > max_depth:
        raise JsonTooDeep()
    return decoded


BODIES = [
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',
    b"{}", b" \t\r\n{} \n", b"{}\n\n", b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"a": 1e400, "b": -0.0, "c": 12345678901234567890}',
    b'{"a": "\\u00e9\\u20ac", "b": "caf\xc3\xa9"}', b'{"a": "\\ud83d\\ude00"}',
    b'{"a": "\\ud800"}', b'{"a": "\\udfff x"}',  # lone surrogates: refused
    b'{"a": 1, "a": 2}',  # a repeated key: the last wins, as json.loads has it
    b"", b" ", b"\n", b"nope", b"{nope", b'{"a": 1}}', b'{"a": 1} x', b'{"a": 1} {}',
    b"[1]", b"1", b'"s"', b"null", b"true", b"[]",
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
    b"\xff\xfe{\x00}\x00", b'{"a": "\xff"}', b'{"a": "\xed\xa0\x80"}',  # not UTF-8
    b'{"a": "x\x01y"}', b'{"a": "tab\there"}',  # control characters inside a string
    b"{\x0c}", b"\x0b{}",  # whitespace JSON does not allow
    b'{"a": [1, 2,]}', b"{'a': 1}", b'{"a": 01}', b'{"a": .5}', b'{"a": tru}',
    b'{"a":' + b"[" * (MAX_JSON_DEPTH + 5) + b"]" * (MAX_JSON_DEPTH + 5) + b"}",
    b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}",  # past the interpreter's own limit
    b'{"a": ' + b"[" * 30 + b"]" * 30 + b', "b": "' + b"[" * 100 + b'"}',  # brackets in text
]


def _outcome(check, body):
    try:
        return check(body)
    except (InvalidJson, BadRequest, JsonTooDeep) as error:
        return type(error)


@pytest.mark.parametrize("body", BODIES)
def test_every_body_gets_the_answer_json_loads_gave(body):
    got, expected = _outcome(check_json_object, body), _outcome(_before, body)
    # Compared as text: an error class by its name, a NaN value (never equal to itself) as NaN.
    assert json.dumps(got, default=repr) == json.dumps(expected, default=repr)


def test_the_errors_are_the_documented_ones():
    assert _outcome(check_json_object, b"{") is InvalidJson
    assert _outcome(check_json_object, b"{} x") is InvalidJson
    assert _outcome(check_json_object, b"") is InvalidJson
    assert _outcome(check_json_object, b"[]") is BadRequest
    assert _outcome(check_json_object, b'{"a": "\\ud800"}') is InvalidJson
    assert _outcome(check_json_object, b"[" * 100_000) in (InvalidJson, JsonTooDeep)
    deep = b'{"a":' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}"
    assert _outcome(check_json_object, deep) is JsonTooDeep


def test_a_valid_object_comes_back_whole():
    assert check_json_object(b' {"a": [1, {"b": null}], "c": "\\u00e9"} ') == {
        "a": [1, {"b": None}], "c": "\u00e9"}
