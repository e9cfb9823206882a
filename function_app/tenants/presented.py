"""Which gateway key a request presents: exactly one, in one of the places a key belongs.

A gateway key is judged only from `Authorization: Bearer <key>`, `api-key: <key>` (Azure's SDKs)
or `x-api-key: <key>` (Anthropic's), and only when it is the request's one gateway key. Anything
else that looks like a gateway key, wherever it sits (a second Authorization, another header,
a cookie, the path or the query,
percent-encoded or not), makes the request refused before any lookup, because the gateway would
otherwise forward a key it never judged. The same key sent in both places is one credential.

Credentials that are not gateway keys (a backend's own `sk-...`) are not judged here: with
GATEWAY_AUTH=optional they reach a backend that has no key of its own (target_request.py
replaces them for one that has).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus

# The shape of a key, checksum not checked: a mistyped key is still a key, and still refused.
KEY_SHAPE = re.compile(r"gw_[a-z2-7]{8}_[0-9A-Za-z]{38}(?![0-9A-Za-z])")
MARK = "gw_"
KEY_HEADERS = ("authorization", "api-key", "x-api-key")
MISPLACED = ("A gateway API key may only be sent as 'Authorization: Bearer <key>', "
             "'api-key: <key>' or 'x-api-key: <key>', once.")
SEVERAL = "The request carries more than one gateway API key; send exactly one."


@dataclass(frozen=True)
class Presented:
    """`key`: the one gateway key to judge (None: no gateway key at all); `problem`: why the
    request must be refused without a lookup (None: nothing wrong)."""

    key: str | None = None
    problem: str | None = None


NOTHING = Presented()


def presented(headers: Iterable[tuple[str, str]], path: str = "", query: str = "") -> Presented:
    """Judge where gateway keys appear in a request's headers (lower-case names), path and
    query. The common request (no `gw_` anywhere outside a key header) costs one substring test
    per header."""
    placed: set[str] = set()
    stray = False
    for name, value in headers:
        if MARK not in value:
            continue
        key = _in_place(name, value)
        if key is not None:
            placed.add(key)
        elif KEY_SHAPE.search(value):
            stray = True
    stray = stray or _hidden_in(path) or _hidden_in(query)
    if stray:
        return Presented(problem=MISPLACED)
    if len(placed) > 1:
        return Presented(problem=SEVERAL)
    return Presented(key=next(iter(placed))) if placed else NOTHING


def _in_place(name: str, value: str) -> str | None:
    """The key when this header is a key header holding exactly one key and nothing else."""
    if name == "authorization":
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        value = token
    elif name not in KEY_HEADERS:
        return None
    value = value.strip()
    return value if KEY_SHAPE.fullmatch(value) else None


def _hidden_in(text: str) -> bool:
    """Whether `text` (a path or query) holds a key, as sent or once percent-decoded."""
    if not text:
        return False
    if MARK in text and KEY_SHAPE.search(text):
        return True
    if "%" not in text and "+" not in text:
        return False
    decoded = unquote_plus(text, encoding="latin-1")
    return MARK in decoded and KEY_SHAPE.search(decoded) is not None
