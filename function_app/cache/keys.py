"""Cache keys: what makes two requests the same, hashed so no tier ever holds a secret.

The function key never enters a key: the `code` query parameter (in any case spelling, percent-
encoded or not: the platform compares query names case-insensitively) is dropped, and a Vary on
x-functions-key is ignored (the key never reaches a backend, so no answer can depend on it).
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from ..core.digest import digest
from ..http.headers import Headers

FUNCTION_KEY_PARAM = "code"
NEVER_KEYED_HEADERS = frozenset({"x-functions-key"})


def query_without_function_key(query: str) -> str:
    if not query:
        return ""
    kept = [part for part in query.split("&")
            if part and unquote_plus(part.split("=", 1)[0]).strip().lower() != FUNCTION_KEY_PARAM]
    return "&".join(kept)


def _digest(*parts: str) -> str:
    return digest(*parts).hex()


def http_key(route: str, path: str, query: str, partition: str = "", inputs: str = "") -> str:
    """The key of a GET answer: the route it came through, path, query (no function key), the
    client id when the route is cached per client, and the request's keyed `inputs` (origin
    and accepted codings, cache/inputs.py)."""
    return "h2:" + _digest(route, path, query_without_function_key(query), partition, inputs)


def variant_key(key: str, values: tuple[tuple[str, str], ...]) -> str:
    """The key of one variant of an answer with Vary (`values` from `vary_values`)."""
    return key + ":" + _digest(*(f"{name}={value}" for name, value in values))[:32]


def vary_values(names: tuple[str, ...], headers: Headers) -> tuple[tuple[str, str], ...]:
    """The request's values of the Vary fields, each hashed (values may be credentials)."""
    values = []
    for name in names:
        if name in NEVER_KEYED_HEADERS:
            continue
        joined = ", ".join(v.strip() for v in headers.get_all(name))
        values.append((name, _digest(joined)[:32]))
    return tuple(values)


def completion_key(kind: str, body: dict, partition: str, inputs: str = "") -> str:
    """The key of a completion: the endpoint, the body in canonical JSON (key order and
    whitespace do not matter) without the fields that only shape delivery, the partition, and
    the request's keyed `inputs` (origin and query, which is forwarded: api-version...)."""
    canonical = json.dumps(normalised(body), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return "c2:" + _digest(kind, canonical, partition, inputs)


DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user"})


def normalised(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in DELIVERY_FIELDS}
