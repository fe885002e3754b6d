"""OIDC: the token header's `alg` is checked against the pinned OIDC_ALGORITHMS before any key
lookup. A token with an unpinned algorithm and a key id we have never seen is refused (401)
without asking the provider for keys: otherwise anybody could make us fetch the JWKS at will,
and the check would depend on where the lookup happens to stop."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings import Settings
from app.main import create_app
from tests.support.oidc_provider import AUDIENCE, FakeProvider, SigningKey


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    yield provider
    provider.stop()


def _b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


def _forged(header: dict[str, Any], claims: dict[str, Any]) -> str:
    body = [_b64(json.dumps(part).encode()) for part in (header, claims)]
    return ".".join([*body, _b64(secrets.token_bytes(32))])


def _new_kid() -> str:
    return uuid.uuid4().hex


#: Tokens whose header names an algorithm outside OIDC_ALGORITHMS (RS256), each with a new kid.
UNPINNED: dict[str, Callable[[FakeProvider], str]] = {
    "HS256": lambda p: jwt.encode(
        p.claims(), secrets.token_bytes(32), algorithm="HS256", headers={"kid": _new_kid()}
    ),
    "RS512": lambda p: jwt.encode(
        p.claims(),
        SigningKey.generate("RS512").private,
        algorithm="RS512",
        headers={"kid": _new_kid()},
    ),
    "ES256": lambda p: jwt.encode(
        p.claims(),
        SigningKey.generate("ES256").private,
        algorithm="ES256",
        headers={"kid": _new_kid()},
    ),
    "none": lambda p: _forged({"alg": "none", "kid": _new_kid(), "typ": "JWT"}, p.claims()),
    "NONE": lambda p: _forged({"alg": "NONE", "kid": _new_kid()}, p.claims()),
    "no alg": lambda p: _forged({"kid": _new_kid()}, p.claims()),
    "alg null": lambda p: _forged({"alg": None, "kid": _new_kid()}, p.claims()),
    "alg list": lambda p: _forged({"alg": ["RS256"], "kid": _new_kid()}, p.claims()),
    "rs256 lower case": lambda p: _forged({"alg": "rs256", "kid": _new_kid()}, p.claims()),
}


def _app(settings: Settings, engine: AsyncEngine, provider: FakeProvider) -> FastAPI:
    config = settings.model_copy(
        update={
            "auth_mode": "oidc",
            "oidc_issuer": provider.issuer,
            "oidc_audience": AUDIENCE,
            "oidc_algorithms": ["RS256"],
            "oidc_http_timeout_s": 2.0,
            # No rate limit on refetches: any lookup of an unknown kid would reach the provider.
            "oidc_jwks_refresh_interval_s": 0.0,
        }
    )
    return create_app(config, engine=engine)


@pytest.fixture
async def oidc(
    settings: Settings, engine: AsyncEngine, provider: FakeProvider
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = _app(settings, engine, provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield app, client


def _fetches(app: FastAPI, provider: FakeProvider) -> tuple[int, int, int]:
    """(JWKS requests the provider saw, discovery requests, fetches the key cache counted)."""
    cache_fetches: int = app.state.services.tokens.verifier.jwks.fetches
    return (
        provider.jwks_fetches,
        provider.hits["/.well-known/openid-configuration"],
        cache_fetches,
    )


async def _refused(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("name", UNPINNED)
async def test_unpinned_alg_with_a_new_kid_is_401_before_any_fetch(
    oidc: tuple[FastAPI, httpx.AsyncClient], provider: FakeProvider, name: str
) -> None:
    """Cold cache: the very first token the service sees."""
    app, client = oidc
    await _refused(client, UNPINNED[name](provider))
    assert _fetches(app, provider) == (0, 0, 0)


async def test_unpinned_algs_never_trigger_a_refetch_of_a_warm_cache(
    oidc: tuple[FastAPI, httpx.AsyncClient], provider: FakeProvider
) -> None:
    app, client = oidc
    good = await client.get("/api/users/me", headers={"Authorization": f"Bearer {provider.sign()}"})
    assert good.status_code == 200, good.text
    assert _fetches(app, provider) == (1, 1, 1)
    for name, forge in UNPINNED.items():
        await _refused(client, forge(provider))
        assert _fetches(app, provider) == (1, 1, 1), name
    # The control: a pinned algorithm with an unknown kid does make the (allowed) refetch, so
    # the absence of fetches above is the alg check, not a rate limit.
    stranger = SigningKey.generate("RS256")
    await _refused(client, provider.sign(key=stranger))
    assert _fetches(app, provider) == (2, 1, 2)
