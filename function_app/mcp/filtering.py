"""Take the tools a key may not call out of a server's answers.

Any JSON-RPC result carrying a `tools` list is filtered, whatever request it answers: the
gateway keeps no memory of which id was a tools/list, and a resumed stream replays answers to
requests made through another instance. A tool whose name is not a string is dropped too.
Every message is passed on re-encoded from what was parsed, changed or not, so a client reads
exactly what was checked (a duplicate `result` key read differently by two parsers, say).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Allowed = Callable[[str], bool]


def filter_message(message: Any, allowed: Allowed) -> Any | None:
    """The message without the unallowed tools; None when nothing had to change."""
    if not isinstance(message, dict):
        return None
    result = message.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return None
    tools = result["tools"]
    kept = [t for t in tools
            if isinstance(t, dict) and isinstance(t.get("name"), str) and allowed(t["name"])]
    if len(kept) == len(tools):
        return None
    return {**message, "result": {**result, "tools": kept}}


def filter_text(text: str, allowed: Allowed) -> str:
    """`filter_message` over a JSON text, re-encoded; ValueError if it is not JSON."""
    message = json.loads(text)
    changed = filter_message(message, allowed)
    return json.dumps(message if changed is None else changed, ensure_ascii=False,
                      separators=(",", ":"))
