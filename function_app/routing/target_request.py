"""The request as one attempt sends it: URL, path, headers and body rewritten for its target.

`Outbound` is the port the upstream step asks before each attempt for the path, query, headers
and body sent to a member. `PlainOutbound` serves members without a wire of their own (their
MODEL_API_KEYS key in place of the client's credentials); aoai/outbound.py serves members given
as objects (Azure's wire, keys from a setting, Entra tokens). Routing never imports a wire
package: the wiring passes the implementation in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote_plus

from ..core.redact import split_userinfo
from ..http.headers import Headers
from .pools import Member, Target
from .routes import Match


def upstream_url(base: str, path: str, query: str) -> str:
    """`base` (a member's URL; its userinfo goes in a header instead, see `own_credential`)
    plus path and query."""
    if "@" in base:
        base = split_userinfo(base)[0]
    return base + path + (f"?{query}" if query else "")


def own_credential(member: Member) -> str | None:
    """The Authorization value of a member that has credentials of its own: its MODEL_API_KEYS
    key, else the `user:password@` of its URL; None for a member without."""
    if member.api_key:
        return f"Bearer {member.api_key}"
    return split_userinfo(member.url)[1] if "@" in member.url else None


def upstream_path(match: Match, target: Target) -> str:
    """The path at `target`: its own upstream path (plus a prefix route's rest), or the match's."""
    if target.path is None:
        return match.upstream_path
    if not match.route.is_prefix:
        return target.path
    rest = match.upstream_path[len(match.route.upstream_path.rstrip("/")):]
    return target.path.rstrip("/") + rest


# Where clients put credentials. A backend with a key of its own (MODEL_API_KEYS) is sent that
# key and none of these: whatever the client sent was for the gateway, or for someone else.
CLIENT_CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "api-key", "x-api-key", "cookie",
    "ocp-apim-subscription-key", "x-goog-api-key", "x-functions-key",
})
CLIENT_CREDENTIAL_PARAMS = frozenset({
    "api-key", "api_key", "apikey", "key", "access_token", "token", "subscription-key",
    "code", "sig",
})


def headers_for(member: Member, headers: Headers, key_header: str = "authorization"
                ) -> Headers:
    """`headers` as sent to `member`: for a member with credentials of its own, every client
    credential header removed and its own set: its key as a Bearer token in Authorization, or
    bare in `key_header` (x-api-key for Anthropic's API); its URL's userinfo as Basic."""
    credential = own_credential(member)
    if credential is None:
        return headers
    kept = headers.without(CLIENT_CREDENTIAL_HEADERS)
    if member.api_key and key_header != "authorization":
        kept.set(key_header, member.api_key)
    else:
        kept.set("authorization", credential)
    return kept


def query_for(member: Member, query: str) -> str:
    """`query` as sent to `member`: without credential parameters when it has its own key."""
    if not query or own_credential(member) is None:
        return query
    return without_credential_params(query)


def without_credential_params(query: str) -> str:
    """`query` without credential parameters (the names compared as a server reads them:
    percent-decoded, any case)."""
    kept = [part for part in query.split("&")
            if unquote_plus(part.split("=", 1)[0], encoding="latin-1").strip().lower()
            not in CLIENT_CREDENTIAL_PARAMS]
    return "&".join(kept)


def body_for(target: Target, body: bytes) -> bytes:
    """The body with its `model` renamed for a fallback model (JSON bodies of OpenAI routes)."""
    if target.model is None:
        return body
    decoded = json.loads(body)
    decoded["model"] = target.model
    return json.dumps(decoded).encode()


@dataclass(slots=True)
class Outgoing:
    """One attempt's request to a member, before its URL is built; not changed once made.
    Not a frozen dataclass: one is made per attempt, and a frozen one's construction (each
    field through `object.__setattr__`) costs about three times a plain one's."""

    path: str
    query: str
    headers: Headers
    body: bytes
    token: str | None = None  # the Entra token sent, if any


class Outbound(Protocol):
    async def prepare(self, member: Member, path: str, query: str, headers: Headers,
                      body: bytes, model: str, timeout_s: float = 30.0,
                      key_header: str = "authorization") -> Outgoing:
        """The attempt's request to `member`; `key_header` is where a plain member's own key
        goes (`headers_for`); `timeout_s` bounds any credential it has to fetch."""
        ...

    def refused(self, member: Member, token: str) -> bool:
        """A 401 answered `token`: True when a retry with a new token makes sense."""
        ...


class PlainOutbound:
    """Members without a wire or credentials of their own: the client's path and query, the
    member's key (if any) in place of the client's credentials."""

    async def prepare(self, member: Member, path: str, query: str, headers: Headers,
                      body: bytes, model: str, timeout_s: float = 30.0,
                      key_header: str = "authorization") -> Outgoing:
        return plain_outgoing(member, path, query, headers, body, key_header)

    def refused(self, member: Member, token: str) -> bool:
        return False


def plain_outgoing(member: Member, path: str, query: str, headers: Headers, body: bytes,
                   key_header: str = "authorization") -> Outgoing:
    if not member.api_key and "@" not in member.url:  # no credential of its own (own_credential
        return Outgoing(path, query, headers, body)  # None): the client's query and headers
    return Outgoing(path, query_for(member, query), headers_for(member, headers, key_header),
                    body)
