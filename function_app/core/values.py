"""Checks of values that settings/ and components parse alike: a backend URL, a header name.

Each takes the raw string and returns the value, or raises ValueError with a message fit to
follow the name of the setting or entry it came from (never echoing a URL's userinfo).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .redact import display_url

HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


def http_url(value: str) -> str:
    """An http(s) URL with a host, without its trailing slashes."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{display_url(value)!r} is not an http(s) URL")  # no userinfo
    return value.rstrip("/")


def header_name(value: str) -> str:
    """A header name (letters, digits, '-'), lower-cased."""
    if not HEADER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a header name")
    return value.lower()
