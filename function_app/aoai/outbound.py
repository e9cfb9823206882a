"""One attempt's request to a member, for members with a wire and credentials of their own.

`Outbound` is what the upstream step asks before each attempt: the path, query, headers and body
for `member`, and the Entra token it used (so a 401 can drop exactly that token). A member
without a BackendSpec goes out as before: its key (MODEL_API_KEYS) in place of the client's
Authorization, the client's path and query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from ..http.headers import Headers
from ..routing.backends import BackendSpec
from ..routing.pools import Member
from ..stages.target_request import Outgoing, PlainOutbound, without_credential_params
from .tokens import TokenProvider, TokenUnavailable
from .wire import azure_body, azure_path, with_credentials

PLAIN = PlainOutbound()


class Outbound:
    def __init__(self, tokens: TokenProvider | None = None,
                 specs: Mapping[str, BackendSpec] | None = None):
        self.tokens = tokens
        # By name, for members built without their spec (GATEWAY_ROUTES pools).
        self.specs = specs or {}

    async def prepare(self, member: Member, path: str, query: str, headers: Headers,
                      body: bytes, model: str, timeout_s: float = 30.0,
                      key_header: str = "authorization") -> Outgoing:
        """The attempt's request; a token not obtained within `timeout_s` (the request's time
        left) is TokenUnavailable. `key_header`: where a plain member's own key goes
        (target_request.headers_for)."""
        spec = member.backend or self.specs.get(member.name)
        if spec is None:
            return await PLAIN.prepare(member, path, query, headers, body, model, timeout_s,
                                       key_header)
        token = None
        if spec.auth == "entra":
            if self.tokens is None:
                raise TokenUnavailable()
            try:
                async with asyncio.timeout(max(0.001, timeout_s)):
                    token = await self.tokens.token(spec.scope)
            except TimeoutError:
                raise TokenUnavailable() from None
        sent = with_credentials(spec, headers, token)
        query = without_credential_params(query) if query else query
        if spec.azure and path.startswith("/v1/"):  # an OpenAI endpoint (a proxy route: as is)
            path, query = azure_path(spec, path, model)
            body = azure_body(spec, body, model)
        return Outgoing(path, query, sent, body, token)

    def refused(self, member: Member, token: str) -> bool:
        """A 401 answered `token`: drop it; True when a retry with a new token makes sense."""
        spec = member.backend or self.specs.get(member.name)
        if self.tokens is None or spec is None:
            return False
        self.tokens.invalidate(spec.scope, token)
        return True
