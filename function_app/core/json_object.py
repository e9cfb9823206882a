"""The one JSON check of a request body: a JSON object, UTF-8 without lone surrogates, and at
most MAX_JSON_DEPTH deep. The body stage runs it on routes that take JSON; the MCP routes run it
on each JSON-RPC message (mcp/jsonrpc.py)."""

from __future__ import annotations

import json
import re

from .errors import BadRequest, InvalidJson, JsonTooDeep

# Deep enough for any real request (tool schemas nest a dozen levels), shallow enough that no
# recursive code after this stage (estimates, re-encoding) can exhaust the stack.
MAX_JSON_DEPTH = 64


# A \uD800-\uDFFF escape: json.loads accepts lone surrogates, which no UTF-8 encoder can write.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

# json.loads(text) is JSONDecoder.decode and raw_decode around the C scanner: three Python frames a
# request. The scanner is called here as decode calls it, between the same whitespace skips
# (json.decoder's WHITESPACE); what it refuses, and trailing data, are InvalidJson as before.
_scan = json.JSONDecoder().scan_once
_SPACE = re.compile(r"[ \t\n\r]*")
_WHITESPACE = " \t\n\r"  # what _SPACE skips, one character at a time


def check_json_object(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict:
    """The body decoded as a JSON object, or InvalidJson / BadRequest / JsonTooDeep.

    Only UTF-8 without lone surrogates is JSON here (RFC 8259 section 8.1, I-JSON): Python's
    decoder accepts both, and a backend that re-encodes the text then fails with a 500.
    """
    try:
        text = body.decode("utf-8")
        skip = _SPACE.match
        # The whitespace skips and the surrogate search run only where there is something
        # for them to find (a body's usual first character is "{", its last "}"): a probe
        # of a character, no call.
        start = skip(text, 0).end() if not text or text[0] in _WHITESPACE else 0
        decoded, end = _scan(text, start)
        if end != len(text) and skip(text, end).end() != len(text):
            raise InvalidJson()  # data after the value
        if b"\\u" in body and _SURROGATE_ESCAPE.search(body):
            json.dumps(decoded, ensure_ascii=False).encode("utf-8")
    except RecursionError:  # nested past the interpreter's own limit
        raise JsonTooDeep() from None
    except (ValueError, UnicodeError, StopIteration):  # StopIteration: no value where one starts
        raise InvalidJson() from None
    if not isinstance(decoded, dict):
        raise BadRequest("The request body must be a JSON object.")
    if body.count(b"{") + body.count(b"[") > max_depth and json_depth(decoded) > max_depth:
        raise JsonTooDeep()
    return decoded


def json_depth(value: object) -> int:
    """How many arrays and objects deep `value` nests, counted without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        deepest = max(deepest, depth)
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest
