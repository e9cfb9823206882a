"""Which MCP servers and tools a gateway key may reach: its `mcp_tools` entries.

An entry is `SERVER:TOOL` or `SERVER:*` (every tool of that server). A key without entries
reaches no MCP server. Names are compared exactly, as strings: no case folding, no Unicode
normalisation, no patterns besides the whole-server `*`; entries are ASCII (TOOL_RE), so a
lookalike name from a client or a server is simply a different, unlisted tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

ALL = "*"
SERVER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# MCP's tool name rule (2025-11-25): 1-128 of letters, digits, `_`, `-`, `.`; `/` is allowed
# too since servers namespace tools with it.
TOOL_RE = re.compile(r"[A-Za-z0-9_./-]{1,128}")


def parse_entry(text: str) -> tuple[str, str]:
    """(server, tool) of `SERVER:TOOL` / `SERVER:*`; ValueError naming the entry otherwise."""
    server, sep, tool = text.strip().partition(":")
    if not sep or not SERVER_RE.fullmatch(server) or not (tool == ALL or TOOL_RE.fullmatch(tool)):
        raise ValueError(f"MCP tool entry {text!r}: use SERVER:TOOL or SERVER:* (server: letters, "
                         "digits, _ . -; tool: 1-128 of letters, digits, _ . - /)")
    return server, tool


@dataclass(frozen=True)
class ToolGrant:
    """What one key may call: server -> its tools (ALL for every tool)."""

    servers: dict[str, frozenset[str]]

    @classmethod
    def of(cls, entries: Iterable[str]) -> ToolGrant:
        """From stored entries; a malformed one (written around the CLI) is ignored, never
        read as a wider grant."""
        servers: dict[str, set[str]] = {}
        for entry in entries:
            try:
                server, tool = parse_entry(entry)
            except ValueError:
                continue
            servers.setdefault(server, set()).add(tool)
        return cls({name: frozenset(tools) for name, tools in servers.items()})

    def reaches(self, server: str) -> bool:
        return server in self.servers

    def may_call(self, server: str, tool: str) -> bool:
        tools = self.servers.get(server)
        return tools is not None and (ALL in tools or tool in tools)


OPEN = None  # no key in play (GATEWAY_AUTH=none): every tool of every configured server


def allowed(grant: ToolGrant | None, server: str, tool: str) -> bool:
    return grant is OPEN or grant.may_call(server, tool)
