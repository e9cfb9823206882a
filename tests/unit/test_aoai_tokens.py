"""The Entra token cache: per credential and scope, refreshed early, renewed after a 401."""

import asyncio

import pytest

from function_app.aoai.tokens import CachedTokens, Token, TokenUnavailable
from tests.support.clock import FakeClock

SCOPE, OTHER = "https://cognitiveservices.azure.com/.default", "https://other/.default"


class FakeSource:
    """A credential with a cache of its own, as azure-identity has: it hands the same token
    back until the token expires, unless renewed."""

    key = "identity:test"

    def __init__(self, clock: FakeClock, lifetime: float = 10.0):
        self.clock, self.lifetime = clock, lifetime
        self.issued: list[tuple[str, str]] = []
        self.cached: dict[str, Token] = {}
        self.renewals = 0
        self.fail = False

    async def fetch(self, scope: str) -> Token:
        await asyncio.sleep(0)
        if self.fail:
            raise RuntimeError("endpoint down")
        held = self.cached.get(scope)
        if held is not None and self.clock.now() < held.expires_on:
            return held
        value = f"tok-{len(self.issued)}"
        self.issued.append((scope, value))
        token = self.cached[scope] = Token(value, self.clock.now() + self.lifetime)
        return token

    async def renew(self) -> None:
        self.renewals += 1
        self.cached.clear()

    async def close(self) -> None:
        return None


@pytest.fixture
def clock():
    return FakeClock()


async def test_a_token_is_fetched_once_and_cached_per_scope(clock):
    source = FakeSource(clock)
    tokens = CachedTokens(source, clock)
    first = await asyncio.gather(*(tokens.token(SCOPE) for _ in range(5)))
    other = await tokens.token(OTHER)
    assert set(first) == {"tok-0"} and other == "tok-1"
    assert source.issued == [(SCOPE, "tok-0"), (OTHER, "tok-1")]


async def test_a_token_is_replaced_before_it_expires_even_when_the_credential_caches_it(clock):
    source = FakeSource(clock, lifetime=10)
    tokens = CachedTokens(source, clock)
    assert await tokens.token(SCOPE) == "tok-0"
    clock.set(clock.now() + 8)  # within the last quarter of its life: refresh now
    assert await tokens.token(SCOPE) == "tok-1"
    assert source.renewals == 1  # the credential gave tok-0 again: it was renewed
    clock.set(clock.now() + 1)
    assert await tokens.token(SCOPE) == "tok-1"


async def test_a_refused_token_is_never_sent_again(clock):
    source = FakeSource(clock)
    tokens = CachedTokens(source, clock)
    refused = await tokens.token(SCOPE)
    tokens.invalidate(SCOPE, refused)
    assert await tokens.token(SCOPE) == "tok-1" != refused


async def test_a_failed_refresh_keeps_a_valid_token_and_no_token_is_an_error(clock):
    source = FakeSource(clock)
    tokens = CachedTokens(source, clock)
    assert await tokens.token(SCOPE) == "tok-0"
    source.fail = True
    clock.set(clock.now() + 8)
    assert await tokens.token(SCOPE) == "tok-0"  # still valid for 2 s
    clock.set(clock.now() + 2)
    with pytest.raises(TokenUnavailable):
        await tokens.token(SCOPE)
    source.fail = False
    assert await tokens.token(SCOPE) == "tok-1"


async def test_the_refresh_follows_the_credentials_refresh_on(clock):
    class Early(FakeSource):
        async def fetch(self, scope):
            token = await super().fetch(scope)
            return Token(token.value, token.expires_on, clock.now() + 1)

    source = Early(clock, lifetime=3600)
    tokens = CachedTokens(source, clock)
    await tokens.token(SCOPE)
    clock.set(clock.now() + 2)
    await tokens.token(SCOPE)
    assert len(source.issued) == 2


async def test_refused_tokens_are_remembered_within_a_bound(clock):
    from function_app.aoai.tokens import REFUSED_KEPT

    tokens = CachedTokens(FakeSource(clock), clock)
    for _ in range(REFUSED_KEPT * 3):
        tokens.invalidate(SCOPE, await tokens.token(SCOPE))
    assert len(tokens._refused) == REFUSED_KEPT
