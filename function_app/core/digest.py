"""One SHA-256 over several strings, for keys that must never hold what they were made of.

Each part is hashed as UTF-8 (lone surrogates kept, so any str hashes) followed by a NUL, which
keeps ("ab", "c") and ("a", "bc") apart. Cache keys (cache/keys.py) and the Content Safety
answer cache (guardrails/guarded.py) are made this way.
"""

from __future__ import annotations

import hashlib


def digest(*parts: str) -> bytes:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogatepass"))
        hasher.update(b"\x00")
    return hasher.digest()
