"""host.json as this host reads it, and the limits the Functions front end and host apply (pure).

Limits follow the Functions host, which runs on ASP.NET Core's Kestrel: at most 100 request
headers, 32 KiB of them in all, an 8 KiB request line, 30 s to receive the headers; request
bodies up to FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (100 MiB by default); an HTTP answer within
230 s whatever functionTimeout says (the front end's limit).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

HTTP_LIMIT_S = 230.0
DEFAULT_FUNCTION_TIMEOUT_S = 30 * 60.0  # Flex Consumption's default


@dataclass(frozen=True)
class Limits:
    max_headers: int = 100
    max_header_bytes: int = 32 * 1024
    max_request_line: int = 8 * 1024
    header_timeout_s: float = 30.0
    max_body_bytes: int = 100 * 1024 * 1024
    http_timeout_s: float = HTTP_LIMIT_S


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    function_timeout_s: float = DEFAULT_FUNCTION_TIMEOUT_S


def parse_timespan(text: str) -> float:
    """`hh:mm:ss` or `d.hh:mm:ss` (optionally with fractions) in seconds; -1 means unbounded."""
    text = text.strip()
    if text == "-1":
        return float("inf")
    found = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)", text)
    if not found:
        raise ValueError(f"host.json functionTimeout {text!r} is not a timespan like 00:05:00")
    days, hours, minutes, seconds = found.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def load_host_config(app_dir: Path) -> HostConfig:
    """routePrefix (default `api`) and functionTimeout from the app's host.json."""
    path = app_dir / "host.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    http = data.get("extensions", {}).get("http", {})
    prefix = http.get("routePrefix", "api")
    timeout = data.get("functionTimeout")
    return HostConfig(route_prefix=str(prefix).strip("/"),
                      function_timeout_s=parse_timespan(timeout) if timeout
                      else DEFAULT_FUNCTION_TIMEOUT_S)


def body_limit(environ: dict[str, str]) -> int:
    """FUNCTIONS_REQUEST_BODY_SIZE_LIMIT in bytes, 100 MiB when unset."""
    value = environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "").strip()
    return int(value) if value else Limits.max_body_bytes
