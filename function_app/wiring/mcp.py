"""Wiring of the MCP routes (#29): settings and the shared parts become the MCP stage."""

from __future__ import annotations

import logging
import os

from ..core.clock import Clock
from ..core.pipeline import Stage
from ..core.upstream import Upstream
from ..mcp.credentials import Credentials, NoTokens, TokenSource
from ..mcp.sessions import SessionSeal
from ..mcp.stage import Acquirer, McpLimits, McpRoutes, mcp_stage
from ..settings.specs import Settings
from .gateway import Parts

log = logging.getLogger(__name__)



def build_mcp_stage(settings: Settings, parts: Parts, clock: Clock, upstream: Upstream,
                    limiter: Acquirer | None, tokens: TokenSource | None = None) -> Stage:
    """The MCP stage over the gateway's upstream and limiter; `tokens` replaces the Entra
    source (tests)."""
    key = settings.mcp_session_key
    if key is None:
        if settings.mcp_table:
            log.warning("MCP_SESSION_KEY is not set: MCP sessions stay on this instance")
        key = os.urandom(32)
    if tokens is None:
        tokens = NoTokens()
        if any(server.auth == "entra" for server in settings.mcp_table.values()):
            from ..adapters.entra_tokens import identity_tokens
            tokens = identity_tokens(os.environ)
    credentials = Credentials(tokens)
    parts.closers.append(credentials.close)
    return mcp_stage(McpRoutes(
        servers=dict(settings.mcp_table), seal=SessionSeal(key, settings.mcp_session_ttl_s),
        upstream=upstream, credentials=credentials, clock=clock,
        limits=McpLimits(settings.mcp_max_message_bytes, settings.mcp_max_event_bytes,
                         settings.mcp_stream_timeout_s),
        keys_required=settings.gateway_auth != "none", limiter=limiter))
