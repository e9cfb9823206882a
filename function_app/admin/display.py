"""How the CLI writes stored values: escaped, so a name cannot drive the operator's terminal.

Records may hold anything a past version or a hand edit wrote, so output is escaped whatever
input validation says: control, format and separator characters become `\\xNN` / `\\uNNNN`.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata

_ESCAPED = ("Cc", "Cf", "Zl", "Zp")


def shown(text: object) -> str:
    """`text` with every control, format or separator character escaped (a backslash too, so
    an escape that was typed cannot pass for one that was made)."""
    value = str(text)
    if value.isprintable() and "\\" not in value:
        return value
    return "".join(_escape(c) for c in value)


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if unicodedata.category(char) not in _ESCAPED:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def when(epoch: float) -> str:
    """A UTC time, "-" for 0 (never), or a plain note for a value no calendar holds."""
    if epoch == 0:
        return "-"
    if not math.isfinite(epoch):
        return f"invalid ({epoch})"
    try:
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"beyond year 9999 ({epoch:g})"
