from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.security import LocalTokens
from app.core.settings import Settings

Auth = Callable[[str], dict[str, str]]


async def test_me_says_who_and_how_many_sessions(client: httpx.AsyncClient, auth: Auth) -> None:
    for title in ("a", "b"):
        await client.post("/api/sessions/", json={"title": title}, headers=auth("alice"))
    await client.post("/api/sessions/", json={"title": "c"}, headers=auth("bob"))
    response = await client.get("/api/users/me", headers=auth("alice"))
    assert response.status_code == 200
    body = response.json()
    assert body["subject"] == "alice"
    assert body["session_count"] == 2
    assert body["email"] is None


async def test_delete_me_erases_the_account_and_everything_it_owns(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    session = (
        await client.post("/api/sessions/", json={"title": "a"}, headers=auth("alice"))
    ).json()
    await client.post(
        f"/api/messages/?session_id={session['id']}",
        json={"role": "user", "content": "hi"},
        headers=auth("alice"),
    )
    await client.post("/api/sessions/", json={"title": "b"}, headers=auth("bob"))
    response = await client.delete("/api/users/me", headers=auth("alice"))
    assert response.status_code == 204
    assert response.content == b""
    async with engine.connect() as conn:
        users = (await conn.execute(text("SELECT auth0_id FROM users"))).scalars().all()
        sessions = await conn.scalar(text("SELECT count(*) FROM sessions"))
        messages = await conn.scalar(text("SELECT count(*) FROM messages"))
    assert users == ["bob"]
    assert (sessions, messages) == (1, 0)
    # The token is still valid at the provider: the next request starts a new, empty account.
    again = await client.get("/api/users/me", headers=auth("alice"))
    assert again.json()["session_count"] == 0
    assert again.json()["id"] != session["user_id"]


async def test_email_follows_the_token_unless_another_account_holds_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    tokens = LocalTokens(settings)

    async def me(subject: str, email: str | None) -> httpx.Response:
        token = tokens.mint(subject, email=email)
        return await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})

    assert (await me("alice", "a@example.com")).json()["email"] == "a@example.com"
    assert (await me("alice", "alice@example.com")).json()["email"] == "alice@example.com"
    assert (await me("alice", None)).json()["email"] == "alice@example.com"
    assert (await me("bob", "b@example.com")).json()["email"] == "b@example.com"
    taken = await me("bob", "alice@example.com")
    assert taken.status_code == 200
    assert taken.json()["email"] == "b@example.com"


async def test_unverified_email_is_ignored(client: httpx.AsyncClient, settings: Settings) -> None:
    import jwt

    claims = jwt.decode(
        LocalTokens(settings).mint("carol", email="ceo@example.com"),
        options={"verify_signature": False},
    )
    token = jwt.encode({**claims, "email_verified": False}, settings.auth_secret, "HS256")
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.json()["email"] is None
