"""The request as one attempt sends it: URL, path, headers and body rewritten for its target."""

from __future__ import annotations

import json

from ..core.routes import Match
from ..http.headers import Headers
from ..routing.pools import Member, Target


def upstream_url(base: str, path: str, query: str) -> str:
    return base + path + (f"?{query}" if query else "")


def upstream_path(match: Match, target: Target) -> str:
    """The path at `target`: its own upstream path (plus a prefix route's rest), or the match's."""
    if target.path is None:
        return match.upstream_path
    if not match.route.is_prefix:
        return target.path
    rest = match.upstream_path[len(match.route.upstream_path.rstrip("/")):]
    return target.path.rstrip("/") + rest


def headers_for(member: Member, headers: Headers, key_header: str = "authorization"
                ) -> Headers:
    """`headers` with the member's own key in place of the client's credential: in
    Authorization as a Bearer token, or in `key_header` (x-api-key for Anthropic's API)."""
    if not member.api_key:
        return headers
    # The client's own credential is for the gateway; it must not reach this backend.
    kept = headers.copy()
    if key_header == "authorization":
        kept.set("authorization", f"Bearer {member.api_key}")
    else:
        kept.remove("authorization")
        kept.set(key_header, member.api_key)
    return kept


def body_for(target: Target, body: bytes) -> bytes:
    """The body with its `model` renamed for a fallback model (JSON bodies of OpenAI routes)."""
    if target.model is None:
        return body
    decoded = json.loads(body)
    decoded["model"] = target.model
    return json.dumps(decoded).encode()
