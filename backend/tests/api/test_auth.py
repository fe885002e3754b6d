from __future__ import annotations

from collections.abc import Callable

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.security import LocalTokens
from app.core.settings import Settings

Auth = Callable[[str], dict[str, str]]

ROUTES = [
    ("POST", "/api/sessions/"),
    ("GET", "/api/sessions/"),
    ("GET", "/api/sessions/1"),
    ("PATCH", "/api/sessions/1"),
    ("DELETE", "/api/sessions/1"),
    ("POST", "/api/messages/?session_id=1"),
    ("GET", "/api/messages/?session_id=1"),
    ("GET", "/api/messages/1"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_api_route_needs_a_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


def _tokens(settings: Settings, **overrides: object) -> list[str]:
    good = LocalTokens(settings)
    claims = jwt.decode(good.mint("mallory"), options={"verify_signature": False})
    wrong_secret = jwt.encode(claims, "another-secret-another-secret-another-secret", "HS256")
    expired = jwt.encode({**claims, "exp": 1_000_000}, settings.auth_secret, "HS256")
    wrong_aud = jwt.encode({**claims, "aud": "someone-else"}, settings.auth_secret, "HS256")
    wrong_iss = jwt.encode({**claims, "iss": "someone-else"}, settings.auth_secret, "HS256")
    no_sub = jwt.encode(
        {k: v for k, v in claims.items() if k != "sub"}, settings.auth_secret, "HS256"
    )
    no_exp = jwt.encode(
        {k: v for k, v in claims.items() if k != "exp"}, settings.auth_secret, "HS256"
    )
    header, payload, signature = good.mint("mallory").split(".")
    tampered_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b"mallory", b"alice12")
    ).decode()
    unsigned = jwt.encode(claims, key="", algorithm="none")
    return [
        "garbage",
        wrong_secret,
        expired,
        wrong_aud,
        wrong_iss,
        no_sub,
        no_exp,
        f"{header}.{tampered_payload}.{signature}",
        unsigned,
        good.mint("x" * 9000),
    ]


async def test_bad_tokens_are_401_and_provision_nobody(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    for token in _tokens(settings):
        response = await client.get("/api/sessions/", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert "invalid bearer token" in response.json()["detail"]
    basic = await client.get("/api/sessions/", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM users")) == 0


async def test_user_is_provisioned_once_from_sub(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    first = await client.post("/api/sessions/", json={"title": "a"}, headers=auth("auth0|alice"))
    second = await client.post("/api/sessions/", json={"title": "b"}, headers=auth("auth0|alice"))
    assert first.json()["user_id"] == second.json()["user_id"]
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT auth0_id, email FROM users"))).all()
    assert rows == [("auth0|alice", None)]


async def test_email_claim_is_stored_and_a_taken_email_does_not_block(
    client: httpx.AsyncClient, settings: Settings, engine: AsyncEngine
) -> None:
    tokens = LocalTokens(settings)
    for subject in ("google|1", "auth0|1"):
        headers = {"Authorization": f"Bearer {tokens.mint(subject, email='a@example.com')}"}
        response = await client.get("/api/sessions/", headers=headers)
        assert response.status_code == 200
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT auth0_id, email FROM users ORDER BY id"))).all()
    assert rows == [("google|1", "a@example.com"), ("auth0|1", None)]
