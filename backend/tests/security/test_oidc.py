"""AUTH_MODE=oidc against a real HTTP provider on 127.0.0.1 (discovery + JWKS), keys we control."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.oidc import JwksCache, OidcTokens
from app.core.settings import Settings
from app.main import create_app
from tests.support.oidc_provider import AUDIENCE, FakeProvider, SigningKey


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    yield provider
    provider.stop()


def oidc_settings(settings: Settings, provider: FakeProvider, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_mode": "oidc",
        "oidc_issuer": provider.issuer,
        "oidc_audience": AUDIENCE,
        "oidc_http_timeout_s": 2.0,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


@pytest.fixture
def oidc_app(settings: Settings, engine: AsyncEngine, provider: FakeProvider) -> FastAPI:
    return create_app(oidc_settings(settings, provider), engine=engine)


@pytest.fixture
async def oidc_client(oidc_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=oidc_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def clocked_client(
    settings: Settings,
    engine: AsyncEngine,
    provider: FakeProvider,
    clock: FakeClock,
    *,
    timeout_s: float = 2.0,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an OIDC app whose JWKS cache reads `clock`: TTLs pass without sleeping."""
    config = oidc_settings(settings, provider, oidc_http_timeout_s=timeout_s)
    app = create_app(config, engine=engine)
    jwks = JwksCache(
        issuer=provider.issuer,
        jwks_url=None,
        algorithms=config.oidc_algorithms,
        ttl_s=config.oidc_jwks_ttl_s,
        refresh_interval_s=config.oidc_jwks_refresh_interval_s,
        timeout_s=timeout_s,
        clock=clock,
    )
    app.state.services = replace(app.state.services, tokens=OidcTokens(config, jwks=jwks))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


async def user_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM users")) or 0)


async def test_valid_token_provisions_the_user_via_discovery(
    oidc_client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    token = provider.sign(email="alice@example.com")
    first = await oidc_client.get("/api/users/me", headers=bearer(token))
    second = await oidc_client.get("/api/users/me", headers=bearer(token))
    assert first.status_code == 200, first.text
    assert first.json()["subject"] == "auth0|alice"
    assert first.json()["email"] == "alice@example.com"
    assert second.json()["id"] == first.json()["id"]
    # The issuer's discovery document named the JWKS; both were fetched once, then cached.
    assert provider.hits["/.well-known/openid-configuration"] == 1
    assert provider.jwks_fetches == 1


async def test_explicit_jwks_url_skips_discovery_and_es256_works(
    settings: Settings, engine: AsyncEngine, provider: FakeProvider
) -> None:
    key = provider.rotate("ES256")
    app = create_app(
        oidc_settings(
            settings, provider, oidc_jwks_url=provider.jwks_url, oidc_algorithms=["ES256"]
        ),
        engine=engine,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.get("/api/users/me", headers=bearer(provider.sign(key=key)))
    assert response.status_code == 200, response.text
    assert provider.hits["/.well-known/openid-configuration"] == 0


def _hostile_tokens(provider: FakeProvider) -> dict[str, str]:
    key = provider.keys[0]
    claims = provider.claims(subject="mallory")
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused_header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    signing_input = unsigned(confused_header, claims).rstrip(".").encode()
    confused = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    good = provider.sign(claims)
    head, payload, signature = good.split(".")
    tampered = b64(json.dumps({**claims, "sub": "auth0|alice"}).encode())
    stranger = SigningKey.generate()
    stranger.kid = key.kid  # the right kid, the wrong private key
    return {
        "alg none": unsigned({"alg": "none", "kid": key.kid}, claims),
        "alg none, no kid": jwt.encode(claims, key="", algorithm="none"),
        "HS256 signed with the RSA public key": unsigned(confused_header, claims, confused),
        "wrong audience": provider.sign(provider.claims(subject="mallory", aud="another-api")),
        "wrong issuer": provider.sign(
            provider.claims(subject="mallory", iss="https://evil.example/")
        ),
        "expired": provider.sign(provider.claims(subject="mallory", exp=1_000_000)),
        "not yet valid": provider.sign(
            provider.claims(subject="mallory", nbf=claims["iat"] + 3600)
        ),
        "missing sub": provider.sign(provider.claims(sub=None)),
        "missing exp": provider.sign(provider.claims(subject="mallory", exp=None)),
        "tampered payload": f"{head}.{tampered}.{signature}",
        "signed by another key": provider.sign(claims, key=stranger),
        "unknown kid": provider.sign(claims, key=SigningKey.generate()),
        "oversized": provider.sign(provider.claims(subject="mallory", pad="x" * 9000)),
        "not a jwt": "not.a.jwt",
        "header not json": f"{b64(b'[1,2]')}.{payload}.{signature}",
        "kid missing": unsigned({"alg": "RS256"}, claims, b"sig"),
    }


async def test_hostile_tokens_are_401_and_provision_nobody(
    oidc_client: httpx.AsyncClient, provider: FakeProvider, engine: AsyncEngine
) -> None:
    # Warm the cache with a real request so "unknown kid" is a miss after a successful fetch.
    assert (await oidc_client.get("/api/users/me", headers=bearer(provider.sign()))).is_success
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE users CASCADE"))
    for name, token in _hostile_tokens(provider).items():
        response = await oidc_client.get("/api/sessions/", headers=bearer(token))
        assert response.status_code == 401, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert await user_count(engine) == 0


async def test_rotated_keys_work_without_restart(
    settings: Settings, engine: AsyncEngine, provider: FakeProvider
) -> None:
    clock = FakeClock()
    async with clocked_client(settings, engine, provider, clock) as client:
        old_token = provider.sign()
        assert (await client.get("/api/users/me", headers=bearer(old_token))).status_code == 200
        new_key = provider.rotate()
        clock.now += 31  # past the minimum interval between two refetches
        new_token = provider.sign(key=new_key)
        response = await client.get("/api/users/me", headers=bearer(new_token))
        assert response.status_code == 200, response.text
        assert provider.jwks_fetches == 2
        # The retired key left the cache with the refetch: its tokens no longer pass.
        assert (await client.get("/api/users/me", headers=bearer(old_token))).status_code == 401
        assert provider.jwks_fetches == 2


async def test_a_new_kid_right_after_a_fetch_waits_for_the_interval(
    settings: Settings, engine: AsyncEngine, provider: FakeProvider
) -> None:
    clock = FakeClock()
    async with clocked_client(settings, engine, provider, clock) as client:
        assert (await client.get("/api/users/me", headers=bearer(provider.sign()))).is_success
        new_token = provider.sign(key=provider.rotate())
        assert (await client.get("/api/users/me", headers=bearer(new_token))).status_code == 401
        clock.now += 30
        assert (await client.get("/api/users/me", headers=bearer(new_token))).status_code == 200


async def test_a_flood_of_unknown_kids_costs_the_provider_one_fetch(
    oidc_client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    assert (await oidc_client.get("/api/users/me", headers=bearer(provider.sign()))).is_success
    stranger = SigningKey.generate()
    claims = provider.claims()

    async def attempt() -> int:
        stranger.kid = uuid.uuid4().hex
        token = provider.sign(claims, key=stranger)
        return (await oidc_client.get("/api/users/me", headers=bearer(token))).status_code

    statuses = await asyncio.gather(*(attempt() for _ in range(40)))
    assert set(statuses) == {401}
    assert provider.jwks_fetches <= 2  # the warm-up, then at most one refetch per interval


async def test_concurrent_misses_share_one_fetch(
    oidc_client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    tokens = [provider.sign(subject=f"auth0|user{i}") for i in range(20)]
    responses = await asyncio.gather(
        *(oidc_client.get("/api/users/me", headers=bearer(t)) for t in tokens)
    )
    assert [r.status_code for r in responses] == [200] * 20
    assert provider.jwks_fetches == 1


async def test_unreachable_provider_is_503_for_new_keys_only(
    settings: Settings, engine: AsyncEngine, provider: FakeProvider
) -> None:
    clock = FakeClock()
    async with clocked_client(settings, engine, provider, clock) as client:
        known = provider.sign()
        assert (await client.get("/api/users/me", headers=bearer(known))).status_code == 200
        newcomer = provider.sign(key=SigningKey.generate())
        provider.stop()
        clock.now += 31
        refused = await client.get("/api/users/me", headers=bearer(newcomer))
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"]
        # Within the refetch interval the outage is remembered: still 503, no new attempt.
        assert (await client.get("/api/users/me", headers=bearer(newcomer))).status_code == 503
        # Tokens signed by cached keys keep working, even past the TTL.
        clock.now += 3600
        assert (await client.get("/api/users/me", headers=bearer(known))).status_code == 200


async def test_cold_start_with_provider_down_is_503(
    oidc_client: httpx.AsyncClient, provider: FakeProvider
) -> None:
    token = provider.sign()
    provider.stop()
    response = await oidc_client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 503


async def test_expired_cache_refreshes_in_background_without_stalling(
    settings: Settings, engine: AsyncEngine, provider: FakeProvider
) -> None:
    clock = FakeClock()
    token = provider.sign()
    async with clocked_client(settings, engine, provider, clock, timeout_s=30.0) as client:
        assert (await client.get("/api/users/me", headers=bearer(token))).status_code == 200
        clock.now += 601  # the cached key set is past its TTL
        provider.hang = True
        response = await client.get("/api/users/me", headers=bearer(token))
        # Answered from the cache while the refresh it started still hangs at the provider.
        assert response.status_code == 200
        await _until(lambda: provider.in_flight == 1)
        assert provider.jwks_fetches == 2
        provider.release.set()
        await _until(lambda: provider.in_flight == 0)


async def _until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop (and the server thread) until `condition` holds."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")
