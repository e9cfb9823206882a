"""The redis tier's Entra ID sign-in: user name from the token's oid, password the token."""

import base64
import json

from function_app.adapters.cache_redis import REDIS_SCOPE, EntraCredentialProvider, object_id


def jwt(claims: dict) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


class FakeCredential:
    def __init__(self, token: str):
        self.token, self.scopes = token, []

    async def get_token(self, *scopes):
        self.scopes.append(scopes)
        return type("AccessToken", (), {"token": self.token, "expires_on": 0})()


def test_object_id_reads_the_oid_claim():
    assert object_id(jwt({"oid": "1234-abcd", "x": "é" * 3})) == "1234-abcd"


async def test_each_connection_gets_oid_and_a_token_for_redis():
    token = jwt({"oid": "mi-object-id"})
    credential = FakeCredential(token)
    provider = EntraCredentialProvider(credential)
    assert await provider.get_credentials_async() == ("mi-object-id", token)
    assert credential.scopes == [(REDIS_SCOPE,)]
