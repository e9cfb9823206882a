"""MCP_SERVERS: the MCP servers behind /mcp/{name}, parsed once at start.

    {"tools": "http://127.0.0.1:8003/mcp",
     "github": {"url": "https://example/mcp", "auth": "key", "key_setting": "MCP_GITHUB_KEY",
                "header": "authorization", "tool_limits": {"*": {"rps": 5, "burst": 10}}},
     "internal": {"url": "https://...", "auth": "entra", "scope": "api://<app-id>/.default"}}

auth: "none" (default), "key" (the value of the app setting `key_setting`, in Azure a Key Vault
reference, sent as `Authorization: Bearer <key>` or in `header`), "entra" (a managed-identity
token for `scope`). `tool_limits`: per tool name (or "*" for each tool), each caller's calls
per second and burst through the gateway's limiter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from function_app.ratelimit.limits import Limit

from ..core.values import header_name, http_url
from .access import ALL, SERVER_RE, TOOL_RE

AUTH_KINDS = ("none", "key", "entra")


@dataclass(frozen=True)
class McpServer:
    name: str
    url: str
    auth: str = "none"
    key: str = field(default="", repr=False)  # resolved from key_setting
    header: str = "authorization"
    scope: str = ""
    tool_limits: Mapping[str, Limit] = field(default_factory=dict)

    def limit_for(self, tool: str) -> Limit | None:
        return self.tool_limits.get(tool, self.tool_limits.get(ALL))


def parse_servers(raw: Mapping, environ: Mapping[str, str]) -> dict[str, McpServer]:
    """Every entry checked; ValueError names the bad one (and a missing key setting)."""
    return {name: _server(str(name), spec, environ) for name, spec in raw.items()}


def _server(name: str, spec: object, environ: Mapping[str, str]) -> McpServer:
    if not SERVER_RE.fullmatch(name):
        raise ValueError(f"server name {name!r}: use letters, digits, '_', '.', '-'")
    spec = {"url": spec} if isinstance(spec, str) else spec
    if not isinstance(spec, Mapping):
        raise ValueError(f"{name}: expected a URL or an object with 'url'")
    auth = spec.get("auth", "none")
    if auth not in AUTH_KINDS:
        raise ValueError(f"{name}: 'auth' must be one of {AUTH_KINDS}")
    key, scope = "", str(spec.get("scope", ""))
    if auth == "key":
        setting = str(spec.get("key_setting", ""))
        key = environ.get(setting, "").strip() if setting else ""
        if not key:
            raise ValueError(f"{name}: auth 'key' needs 'key_setting', the name of a set app "
                             f"setting holding the key ({setting or 'none given'} is empty)")
    if auth == "entra" and not scope:
        raise ValueError(f"{name}: auth 'entra' needs 'scope' (e.g. api://<app-id>/.default)")
    return McpServer(name, http_url(str(spec.get("url", ""))), auth, key,
                     header_name(str(spec.get("header", "authorization"))), scope,
                     _limits(name, spec.get("tool_limits", {})))


def _limits(name: str, raw: object) -> dict[str, Limit]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{name}: 'tool_limits' must be an object")
    limits = {}
    for tool, spec in raw.items():
        if tool != ALL and not TOOL_RE.fullmatch(str(tool)):
            raise ValueError(f"{name}: tool_limits: bad tool name {tool!r}")
        if not isinstance(spec, Mapping):
            raise ValueError(f"{name}: tool_limits.{tool}: expected {{\"rps\", \"burst\"}}")
        rps = float(spec.get("rps", 0))
        limits[str(tool)] = Limit(rps, max(float(spec.get("burst", rps)), 1.0))
    return limits
