"""How a URL is shown wherever a person or a client can read it: never with its userinfo.

A backend URL may carry credentials (`http://user:password@host/`) and a query may carry a key
(`?api-key=...`). `display_url` is the one function that turns a URL into its shown form: the
scheme, host, port and path, with `user:password@` and the query and fragment dropped. Backend
names made from URLs, /healthz, /_gateway/stats, /metrics labels, logs and error messages all
use it (`redact_urls` applies it to every URL inside a free text).
"""

from __future__ import annotations

import base64
import functools
import re
from urllib.parse import unquote, urlsplit, urlunsplit

# From a scheme to the next blank, double quote or angle bracket: a URL inside a message.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"<>]*")


def display_url(url: str) -> str:
    """`url` without userinfo, query or fragment; a value that does not parse as a URL is
    reduced to whatever follows its last `@` (so a broken URL cannot leak a password either)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.rsplit("@", 1)[-1] if "@" in url else url
    if not parts.scheme or not parts.netloc:
        return url.rsplit("@", 1)[-1] if "@" in url else url
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_urls(text: str) -> str:
    """`text` with every URL in it replaced by its display_url form."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: display_url(m.group(0)), text)


@functools.lru_cache(maxsize=256)
def split_userinfo(url: str) -> tuple[str, str | None]:
    """(`url` without its userinfo, otherwise as written; `Basic ...` made from the userinfo,
    or None). Not a display form: the URL keeps its query. HTTP clients refuse a URL with
    userinfo beside an Authorization header, so the gateway sends the userinfo as the header."""
    if "@" not in url:
        return url, None
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rsplit("@", 1)[1]
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    basic = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), basic
