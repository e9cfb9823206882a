"""A managed-identity endpoint of the App Service / Functions kind, and the check of its tokens.

GET /msi/token?api-version=2019-08-01&resource=<resource>[&client_id=<id>] with the header
X-IDENTITY-HEADER: <IDENTITY_HEADER> answers {"access_token", "expires_on", "resource",
"token_type", "client_id"}, as the platform's endpoint does (azure-identity's
ManagedIdentityCredential reads IDENTITY_ENDPOINT and IDENTITY_HEADER and calls it).

Tokens are `<payload>.<signature>`: the payload is base64url JSON {aud, iat, exp, oid, jti} and
the signature an HMAC-SHA256 with a key only this process knows, so the Azure OpenAI surface of
the same process can check audience, expiry and signature the way Entra-issued JWTs are checked.
They live SIM_TOKEN_LIFETIME_S seconds (short, so expiry and refresh are exercised).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

SIGNING_KEY = secrets.token_bytes(32)
API_VERSION = "2019-08-01"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(resource: str, client_id: str, lifetime_s: float) -> dict[str, Any]:
    """A token answer for `resource` (an audience such as https://cognitiveservices.azure.com)."""
    now = time.time()
    exp = int(now + lifetime_s)
    payload = _b64(json.dumps({"aud": resource, "iat": now, "exp": exp, "oid": client_id,
                               "jti": secrets.token_hex(8)}).encode())
    signature = _b64(hmac.new(SIGNING_KEY, payload.encode(), hashlib.sha256).digest())
    return {"access_token": f"{payload}.{signature}", "expires_on": str(exp),
            "resource": resource, "token_type": "Bearer", "client_id": client_id}


@dataclass(frozen=True)
class Checked:
    ok: bool
    reason: str = ""
    claims: dict | None = None


def check(token: str, audience: str, now: float | None = None) -> Checked:
    """Signature, audience and expiry of a bearer token, as a resource checks them."""
    payload, _, signature = token.partition(".")
    expected = _b64(hmac.new(SIGNING_KEY, payload.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        return Checked(False, "invalid signature")
    claims = json.loads(_unb64(payload))
    if claims.get("aud") != audience:
        return Checked(False, "wrong audience", claims)
    if (now or time.time()) >= claims["exp"]:
        return Checked(False, "token expired", claims)
    return Checked(True, "", claims)


def token_answer(query: dict[str, str], header: str | None) -> tuple[int, dict[str, Any]]:
    """(status, body) of GET /msi/token."""
    secret = os.environ.get("SIM_IDENTITY_HEADER", "")
    if not secret or header is None or not hmac.compare_digest(header, secret):
        return 401, {"error": "unauthorized", "error_description": "bad X-IDENTITY-HEADER"}
    if query.get("api-version") != API_VERSION or not query.get("resource"):
        return 400, {"error": "invalid_request",
                     "error_description": "api-version=2019-08-01 and resource are required"}
    lifetime = float(os.environ.get("SIM_TOKEN_LIFETIME_S", "10"))
    client_id = query.get("client_id") or "system-assigned"
    return 200, issue(query["resource"], client_id, lifetime)
