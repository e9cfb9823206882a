"""Client paths made safe to forward, decided on the raw, still-encoded path.

A server decodes `%2f` to `/` and `%2e%2e` to `..` before the application sees `path`, and an
HTTP client resolves `..` when it builds a URL; a gateway that joins the decoded path onto a
route's upstream prefix lets `/echo/..%2f..%2fadmin` reach `/admin`. So the upstream path is built
from the raw path (ASGI `raw_path`), segment by segment, and these are refused (400
`invalid_path`), encoded or not: `.` and `..` segments (also after NFKC, which folds fullwidth
dots), `/` `\\` `?` `#` inside a segment, control characters and NUL, malformed escapes, and
escapes that decode to another escape (double encoding). Everything else is forwarded with its
escapes kept and any byte outside RFC 3986 `pchar` percent-encoded, so what the backend decodes
is what the gateway matched. `forward_path` then checks the final path stays under the route's
upstream prefix, in case a rule above ever misses something.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from .errors import InvalidPath

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
PCHAR = frozenset(_UNRESERVED + "!$&'()*+,;=:@")  # RFC 3986 pchar, less pct-encoded
QUERY_SAFE = PCHAR | frozenset("/?%")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")  # pchar and "/": nothing to decode
_REFUSED_BYTES = frozenset(b"/\\?#") | frozenset(range(0x20)) | {0x7F}


@dataclass(frozen=True)
class SafePath:
    """A path that passed the rules: its segments raw (normalized escapes) and decoded."""

    raw: tuple[str, ...]  # without the empty segment before the leading "/"
    decoded: str  # "/" + segments decoded as UTF-8 (replacement for invalid bytes)


# Plain paths already judged, each with its SafePath (frozen, so one object serves every request
# of that path): an instance sees few distinct paths. Bounded as http/headers.py's name tables:
# once full, or for a longer path, a path is judged per request, never stored, nothing evicted.
_JUDGED: dict[str, SafePath] = {}
JUDGED_PATHS = 1024
JUDGED_PATH_LEN = 256


def parse_path(raw_path: str) -> SafePath:
    """Check `raw_path` (latin-1 text of the raw bytes); InvalidPath when a rule refuses it."""
    judged = _JUDGED
    if raw_path in judged:  # a plain path seen before: the same answer, no work
        return judged[raw_path]
    if not raw_path.startswith("/"):
        raise InvalidPath()
    if _PLAIN.fullmatch(raw_path):  # the common case, checked at C speed
        segments = tuple(raw_path[1:].split("/"))
        if "." in segments or ".." in segments:
            raise InvalidPath()
        safe = SafePath(segments, raw_path)
        if len(judged) < JUDGED_PATHS and len(raw_path) <= JUDGED_PATH_LEN:
            judged[raw_path] = safe
        return safe
    raw_segments, decoded = [], []
    for segment in raw_path[1:].split("/"):
        raw, text = _segment(segment)
        raw_segments.append(raw)
        decoded.append(text)
    return SafePath(tuple(raw_segments), "/" + "/".join(decoded))


def _segment(segment: str) -> tuple[str, str]:
    """One segment normalized (escapes upper-case, other bytes encoded) and decoded."""
    out: list[str] = []
    data = bytearray()
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "%":
            match = _ESCAPE.match(segment, i)
            if match is None:
                raise InvalidPath()
            byte = int(match.group(1), 16)
            out.append(f"%{byte:02X}")
            data.append(byte)
            i += 3
            continue
        code = ord(char)
        if code > 0xFF or code in _REFUSED_BYTES:
            raise InvalidPath()
        out.append(char if char in PCHAR else f"%{code:02X}")
        data.append(code)
        i += 1
    if any(byte in _REFUSED_BYTES for byte in data):
        raise InvalidPath()
    text = data.decode("utf-8", "replace")
    folded = unicodedata.normalize("NFKC", text)
    if folded in (".", "..") or text in (".", "..") or _ESCAPE.search(text):
        raise InvalidPath()
    return "".join(out), text


def forward_path(upstream_path: str, route_prefix: str, path: SafePath) -> str:
    """`upstream_path` plus the raw segments of `path` after `route_prefix` ("/a/b" of "/a/b/*").

    Raises InvalidPath when the result would not stay under `upstream_path`.
    """
    depth = len(route_prefix.strip("/").split("/")) if route_prefix.strip("/") else 0
    rest = path.raw[depth:]
    base = upstream_path.rstrip("/")
    joined = base + "".join("/" + segment for segment in rest) if rest else upstream_path
    if not stays_under(joined, upstream_path):
        raise InvalidPath()
    return joined or "/"


def stays_under(path: str, prefix: str) -> bool:
    """Whether `path`, fully decoded and with dot segments resolved, is `prefix` or below it."""
    resolved = _remove_dot_segments(unquote_to_bytes(path).decode("utf-8", "replace"))
    base = prefix.rstrip("/")
    return resolved == prefix or resolved == base or resolved.startswith(base + "/")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, on segments (a backslash counted as a separator, as some do)."""
    out: list[str] = []
    for segment in path.replace("\\", "/").split("/"):
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    return "/".join(out)


def safe_query(query: str) -> str:
    """The query with every byte outside the query set (`#`, controls, spaces, non-ASCII)
    percent-encoded, so no client library reads a fragment or splits it differently."""
    if not query or QUERY_SAFE.issuperset(query):  # every character safe: one C-level call
        return query
    return quote(query.encode("latin-1", "replace"), safe="".join(sorted(QUERY_SAFE)))


def raw_path_of(raw: bytes | None, decoded: str) -> str:
    """The raw path from an ASGI scope's `raw_path`, else `path` re-encoded (a server that does
    not give the raw path has already merged `%2f` into `/`: nothing better is possible)."""
    if raw:
        return raw.decode("latin-1")
    return quote(decoded, safe="".join(sorted(PCHAR | {"/"})))
