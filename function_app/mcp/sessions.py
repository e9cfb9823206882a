"""Session ids that any gateway instance can read: the upstream's id, sealed.

The id a client sees is `g1.` + base64url(nonce | AES-256-GCM(JSON)), the JSON binding the
server name, the upstream's Mcp-Session-Id, the gateway key's prefix (empty without a key) and an
expiry. No instance keeps a table of sessions, so an instance that never saw the session can
continue it, and nothing is lost when instances come and go. An id presented on another server
or with another key is "not found", like a forged, altered or expired one (the protocol's 404);
a session the server has ended is its own 404, passed on as ours (stage.py).

The key comes from MCP_SESSION_KEY (32 bytes, base64), the same on every instance.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import McpSessionNotFound

PREFIX = "g1."
NONCE_LEN = 12
MAX_ID_LEN = 2048  # a sealed id of a 1 KiB upstream id fits; anything longer is not ours
AAD = b"ai-gateway mcp session v1"


@dataclass(frozen=True)
class Session:
    server: str
    upstream_id: str
    key_prefix: str
    expires: float


class SessionSeal:
    def __init__(self, key: bytes, ttl_s: float, nonce=os.urandom):
        """`key`: 32 bytes; `ttl_s`: how long an id stays valid after the session starts."""
        if len(key) != 32:
            raise ValueError("an MCP session key is 32 bytes")
        self._aead, self._ttl, self._nonce = AESGCM(key), ttl_s, nonce

    def seal(self, server: str, upstream_id: str, key_prefix: str, now: float) -> str:
        plain = json.dumps({"s": server, "u": upstream_id, "k": key_prefix,
                            "e": round(now + self._ttl)}, separators=(",", ":")).encode()
        nonce = self._nonce(NONCE_LEN)
        sealed = nonce + self._aead.encrypt(nonce, plain, AAD)
        return PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, token: str, server: str, key_prefix: str, now: float) -> Session:
        """The session behind `token`, if it was sealed here for `server` and `key_prefix` and
        has not expired; McpSessionNotFound (404) for anything else."""
        session = self._unseal(token)
        if session is None or session.server != server or session.key_prefix != key_prefix \
                or now >= session.expires:
            raise McpSessionNotFound()
        return session

    def _unseal(self, token: str) -> Session | None:
        if not token.startswith(PREFIX) or len(token) > MAX_ID_LEN:
            return None
        body = token[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(raw[:NONCE_LEN], raw[NONCE_LEN:], AAD)
            fields = json.loads(plain)
            return Session(str(fields["s"]), str(fields["u"]), str(fields["k"]),
                           float(fields["e"]))
        except (binascii.Error, ValueError, InvalidTag, KeyError, TypeError):
            return None


def session_key(text: str) -> bytes | None:
    """MCP_SESSION_KEY's bytes (base64 of 32 bytes); None when unset. ValueError otherwise."""
    if not text:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("must be base64 (e.g. `openssl rand -base64 32`)") from None
    if len(key) != 32:
        raise ValueError(f"must decode to 32 bytes, not {len(key)}")
    return key
