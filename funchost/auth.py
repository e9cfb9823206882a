"""Function keys, as the Functions host checks them (pure).

Off unless keys are configured, as under `func start`. With keys: `anonymous` functions need
none; `function` functions take a function key or the master key; `admin` functions only the
master key. A key comes in the `x-functions-key` header or the `code` query parameter. Keys are
compared in constant time. The host forwards the request unchanged, as the Functions host does;
the app strips both before anything reaches a backend.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl

KEY_HEADER = b"x-functions-key"


@dataclass(frozen=True)
class Keys:
    function_keys: tuple[str, ...] = ()
    master_key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.function_keys or self.master_key)

    @classmethod
    def parse(cls, function_keys: str, master_key: str = "") -> Keys:
        """From comma-separated function keys and an optional master key."""
        keys = tuple(k.strip() for k in function_keys.split(",") if k.strip())
        return cls(keys, master_key.strip())


def presented_key(headers: list[tuple[bytes, bytes]], query: bytes) -> str:
    """The key the request carries: the header first, else the `code` query parameter."""
    for name, value in headers:
        if name.lower() == KEY_HEADER:
            return value.decode("latin-1")
    if b"code=" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == "code":
                return value
    return ""


def _matches(key: str, candidates: tuple[str, ...]) -> bool:
    found = False
    for candidate in candidates:  # no early exit: timing says nothing about which key matched
        found |= hmac.compare_digest(key.encode(), candidate.encode())
    return found


def authorized(keys: Keys, auth_level: str, key: str) -> bool:
    """Whether a request with `key` may call a function of `auth_level`."""
    if not keys.enabled or auth_level == "anonymous":
        return True
    if not key:
        return False
    master = (keys.master_key,) if keys.master_key else ()
    if auth_level == "admin":
        return _matches(key, master)
    return _matches(key, keys.function_keys + master)
