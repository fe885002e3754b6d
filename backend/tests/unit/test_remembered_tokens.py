"""A verified token is remembered until it expires, never longer, and refused ones never."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.core.security import InvalidToken, LocalTokens, RememberedTokens
from app.core.settings import Settings
from app.domain.dtos import Principal

SECRET = "test-secret-0123456789-0123456789-0123456789"


class Counting:
    def __init__(self, tokens: LocalTokens) -> None:
        self.tokens = tokens
        self.calls = 0

    async def authenticate(self, token: str) -> Principal:
        self.calls += 1
        return await self.tokens.authenticate(token)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def local() -> LocalTokens:
    return LocalTokens(Settings(_env_file=None, auth_secret=SECRET, auth_leeway_s=0))


async def test_a_token_is_verified_once_until_it_expires(local: LocalTokens) -> None:
    verifier, clock = Counting(local), Clock()
    remembered = RememberedTokens(verifier, clock=clock)
    token = local.mint("alice", ttl_s=60)
    first = await remembered.authenticate(token)
    assert await remembered.authenticate(token) == first
    assert verifier.calls == 1
    assert first.expires_at is not None
    clock.now = first.expires_at  # expired by the remembered clock: verified again
    await remembered.authenticate(token)
    assert verifier.calls == 2


async def test_an_expired_token_is_refused_however_it_was_seen_before(local: LocalTokens) -> None:
    remembered = RememberedTokens(Counting(local))
    token = local.mint("alice", ttl_s=1)
    await remembered.authenticate(token)
    await asyncio.sleep(1.1)  # exp is a whole second at most 1 s away: now it is refused
    with pytest.raises(InvalidToken):
        await remembered.authenticate(token)


async def test_refused_tokens_are_not_remembered(local: LocalTokens) -> None:
    verifier = Counting(local)
    remembered = RememberedTokens(verifier)
    forged = local.mint("alice")[:-2] + "xx"
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await remembered.authenticate(forged)
    assert verifier.calls == 2


async def test_the_memory_is_bounded(local: LocalTokens) -> None:
    verifier = Counting(local)
    remembered = RememberedTokens(verifier, capacity=2)
    a, b, c = (local.mint(name) for name in "abc")
    for token in (a, b, a, c):  # c pushes out b, the least recently used
        await remembered.authenticate(token)
    assert verifier.calls == 3
    await remembered.authenticate(a)
    assert verifier.calls == 3
    await remembered.authenticate(b)
    assert verifier.calls == 4
