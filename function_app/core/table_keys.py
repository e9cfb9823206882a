"""Safe Table Storage keys for any id or path (rate-limit rows, overrides, routing rows).

Table keys may not contain '/', '\\', '#', '?' or control characters, and '%', '~' and quotes
have broken some SDKs and tools, so the encoding keeps only [A-Za-z0-9_.:@-] verbatim:

- a non-empty key made only of those characters, not starting with "b64.", is stored as is
  ("team-a" -> "team-a");
- anything else is "b64." + URL-safe base64 of its UTF-8 bytes without padding
  ("/infer/python" -> "b64.L2luZmVyL3B5dGhvbg").

`encode_key` is what an operator uses to write a RowKey in the `limitoverrides` table.
"""

from __future__ import annotations

import base64
import re

_SAFE = re.compile(r"[A-Za-z0-9_.:@-]+")
_PREFIX = "b64."


def encode_key(key: str) -> str:
    """Reversible, Table-safe form of `key` (see the module docstring)."""
    if _SAFE.fullmatch(key) and not key.startswith(_PREFIX):
        return key
    encoded = base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")
    return _PREFIX + encoded.rstrip("=")


def decode_key(stored: str) -> str:
    """Inverse of `encode_key`; raises ValueError for a key no encoder could have written."""
    if not stored.startswith(_PREFIX):
        if not _SAFE.fullmatch(stored):
            raise ValueError(f"not an encoded key: {stored!r}")
        return stored
    body = stored[len(_PREFIX):]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an encoded key: {stored!r}") from exc
