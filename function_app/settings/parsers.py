"""Parsers of setting values: each takes the raw string and returns the value, or raises
ValueError with a message fit to follow the setting's name (never echoing a secret)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..core.values import http_url


def optional_http_url(value: str) -> str:
    return http_url(value) if value else ""


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not lo <= number <= hi:
            raise ValueError(f"{number} is outside {lo}..{hi}")
        return number

    return parse


def float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value)
        if not lo <= number <= hi:  # also rejects nan
            raise ValueError(f"{number} is outside {lo}..{hi}")
        return number

    return parse


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")


def choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value

    return parse


def json_of(kind: type) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        if not value:
            return kind()
        decoded = json.loads(value)
        if not isinstance(decoded, kind):
            raise ValueError(f"expected a JSON {kind.__name__}")
        return decoded

    return parse


def text(value: str) -> str:
    return value


def connection_string(value: str) -> str:
    """A storage connection string's shape; the message never repeats the value (it has a key)."""
    if not value or value.replace(" ", "").lower() == "usedevelopmentstorage=true":
        return value
    pairs = [part.split("=", 1) for part in value.split(";") if part.strip()]
    keys = {pair[0].strip().lower() for pair in pairs if len(pair) == 2}
    if len(keys) != len(pairs) or "accountname" not in keys:
        raise ValueError("expected key=value pairs separated by ';' including AccountName "
                         "(or UseDevelopmentStorage=true)")
    if not keys & {"accountkey", "sharedaccesssignature"}:
        raise ValueError("has no AccountKey or SharedAccessSignature")
    return value


def matching(pattern: str, what: str) -> Callable[[str], str]:
    """A value `pattern` matches whole; else "'value' is not <what>"."""

    def parse(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return parse


table_name = matching(r"[A-Za-z][A-Za-z0-9]{2,62}",
                      "a valid table name (3-63 letters and digits)")
container_name = matching(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}",
                          "a valid blob container name")


def timer_schedule(value: str) -> str:
    """An NCRONTAB expression with seconds (six fields) or a TimeSpan `hh:mm:ss` interval."""
    field = r"[0-9A-Za-z*,/-]+"
    if not (re.fullmatch(rf"\s*{field}(\s+{field}){{5}}\s*", value)
            or re.fullmatch(r"\d+:\d{2}:\d{2}", value.strip())):
        raise ValueError(f"{value!r} is not a timer schedule (six NCRONTAB fields, seconds "
                         "first, or hh:mm:ss)")
    return value.strip()


def scope_names(value: str) -> frozenset[str]:
    scopes = frozenset(part.strip() for part in value.split(",") if part.strip())
    if not scopes <= {"global", "client"}:
        raise ValueError(f"{value!r} names a scope other than global, client")
    return scopes


# --- response cache ---

CACHE_ROUTE_MODES = ("off", "shared", "per-client")


def cache_route_modes(value: str) -> dict[str, str]:
    modes = json_of(dict)(value)
    for path, mode in modes.items():
        if not str(path).startswith("/"):
            raise ValueError(f"{path!r}: a route path must start with '/'")
        if mode not in CACHE_ROUTE_MODES:
            raise ValueError(f"{path!r}: {mode!r} is not one of {', '.join(CACHE_ROUTE_MODES)}")
    return modes


def name_list(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def redis_url(value: str) -> str:
    """redis:// or rediss:// with a host; the message never repeats the value (it may hold a
    password)."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("expected redis://host:port/db or rediss://host:port")
    return value


def mcp_session_key(value: str) -> bytes | None:
    """MCP_SESSION_KEY: base64 of 32 bytes, or empty (None)."""
    from ..mcp.sessions import session_key
    return session_key(value)
