"""Temporary chats: `expires_at` set on create or PATCH (in the future; `null` clears it), and
once it has passed the session is gone from every route at once, before any sweep."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Auth = Callable[[str], dict[str, str]]


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_expires_at_on_create_and_patch(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    later = _in(3600)
    created = await client.post(
        "/api/sessions/", json={"title": "temp", "expires_at": later}, headers=alice
    )
    assert created.status_code == 201, created.text
    session = created.json()
    assert datetime.fromisoformat(session["expires_at"]) == datetime.fromisoformat(later)
    sid = session["id"]

    cleared = await client.patch(f"/api/sessions/{sid}", json={"expires_at": None}, headers=alice)
    assert cleared.status_code == 200
    assert cleared.json()["expires_at"] is None
    renamed = await client.patch(f"/api/sessions/{sid}", json={"title": "kept"}, headers=alice)
    assert renamed.json()["expires_at"] is None  # left out: unchanged
    again = await client.patch(f"/api/sessions/{sid}", json={"expires_at": later}, headers=alice)
    assert again.status_code == 200
    assert again.json()["expires_at"] is not None
    plain = await client.post("/api/sessions/", json={"title": "plain"}, headers=alice)
    assert plain.json()["expires_at"] is None


@pytest.mark.parametrize(
    "value",
    [
        _in(-60),
        "2020-01-01T00:00:00Z",
        "2999-01-01T00:00:00",
        "9999-12-31T23:59:00-23:00",  # after year 9999 in UTC: out of range, not a 500
    ],
)
async def test_expires_at_must_be_a_future_time_with_a_zone(
    client: httpx.AsyncClient, auth: Auth, value: str
) -> None:
    alice = auth("alice")
    created = await client.post(
        "/api/sessions/", json={"title": "t", "expires_at": value}, headers=alice
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["loc"][:2] == ["body", "expires_at"]
    sid = (await client.post("/api/sessions/", json={"title": "t"}, headers=alice)).json()["id"]
    patched = await client.patch(f"/api/sessions/{sid}", json={"expires_at": value}, headers=alice)
    assert patched.status_code == 422
    assert (await client.get("/api/sessions/", headers=alice)).json()[0]["expires_at"] is None


async def test_an_expired_session_is_gone_from_every_route(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    label = {"project": "x"}
    temporary = {"title": "fleeting", "expires_at": _in(3600), "metadata": label}
    sid = (await client.post("/api/sessions/", json=temporary, headers=alice)).json()["id"]
    plain = {"title": "kept", "metadata": label}
    kept = (await client.post("/api/sessions/", json=plain, headers=alice)).json()
    shelved = (await client.post("/api/sessions/", json=temporary, headers=alice)).json()["id"]
    archived = await client.patch(
        f"/api/sessions/{shelved}", json={"archived": True, "pinned": True}, headers=alice
    )
    assert archived.json()["expires_at"] is not None  # PATCH of flags keeps the expiry
    user = await client.post(
        f"/api/messages/?session_id={sid}",
        json={"role": "user", "content": "hello"},
        headers=alice,
    )
    answer = await client.post(
        f"/api/messages/?session_id={sid}",
        json={"role": "assistant", "content": "hi"},
        headers=alice,
    )
    mid, aid = user.json()["id"], answer.json()["id"]
    rated = await client.put(f"/api/messages/{aid}/feedback", json={"rating": "up"}, headers=alice)
    assert rated.status_code == 200
    assert (await client.get("/api/users/me", headers=alice)).json()["session_count"] == 3
    listed = await client.get("/api/sessions/?metadata=project:x", headers=alice)
    assert {s["id"] for s in listed.json()} == {sid, kept["id"]}

    async with engine.begin() as conn:  # their time passes
        await conn.execute(
            text(
                "UPDATE sessions SET expires_at = now() - interval '1 second' "
                "WHERE expires_at IS NOT NULL"
            )
        )

    gone: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/api/sessions/{sid}", None),
        ("PATCH", f"/api/sessions/{sid}", {"title": "back"}),
        ("PATCH", f"/api/sessions/{sid}", {"expires_at": None}),
        ("GET", f"/api/sessions/{sid}/thread", None),
        ("POST", f"/api/sessions/{sid}/fork", {}),
        ("GET", f"/api/messages/?session_id={sid}", None),
        ("POST", f"/api/messages/?session_id={sid}", {"role": "user", "content": "x"}),
        ("GET", f"/api/messages/{mid}", None),
        ("POST", f"/api/sessions/{sid}/replies", {"content": "x"}),
        ("POST", f"/api/messages/{aid}/regenerate", None),
        ("GET", f"/api/messages/{aid}/stream", None),
        ("POST", f"/api/messages/{aid}/cancel", None),
        ("PATCH", f"/api/sessions/{sid}", {"metadata": {}}),
        ("PATCH", f"/api/sessions/{sid}", {"archived": True}),
        ("PATCH", f"/api/sessions/{shelved}", {"pinned": False}),
        ("GET", f"/api/sessions/{sid}/export", None),
        ("GET", f"/api/sessions/{shelved}/export", None),
        ("PUT", f"/api/messages/{aid}/feedback", {"rating": "down"}),
        ("DELETE", f"/api/messages/{aid}/feedback", None),
        ("DELETE", f"/api/sessions/{sid}", None),
    ]
    for method, url, body in gone:
        response = await client.request(method, url, json=body, headers=alice)
        assert response.status_code == 404, (method, url, response.text)
    for query in ("", "?metadata=project:x", "?archived=true", "?archived=true&metadata=project:x"):
        listed = (await client.get(f"/api/sessions/{query}", headers=alice)).json()
        assert [s["id"] for s in listed] == ([] if "archived" in query else [kept["id"]]), query
    exported = await client.get("/api/users/me/export", headers=alice)
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [line["session"]["title"] for line in lines] == ["kept"]
    assert (await client.get("/api/users/me", headers=alice)).json()["session_count"] == 1
    assert (await client.get("/api/search?q=hello", headers=alice)).json() == []
    async with engine.connect() as conn:  # still stored until the sweep deletes it
        assert await conn.scalar(text("SELECT count(*) FROM messages")) == 2
        rating = "SELECT feedback_rating FROM messages WHERE id = :a"
        assert await conn.scalar(text(rating), {"a": aid}) == "up"  # untouched


async def test_expired_sessions_do_not_count_against_the_quota(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine, app: FastAPI
) -> None:
    alice = auth("alice")
    maximum = app.state.services.limits.max_sessions_per_user
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "WITH u AS (INSERT INTO users (auth0_id, session_count) VALUES ('alice', :n) "
                "RETURNING id) INSERT INTO sessions (user_id, title, expires_at) "
                "SELECT u.id, 't', now() - interval '1 second' FROM u, generate_series(1, :n)"
            ),
            {"n": maximum},
        )
    created = await client.post("/api/sessions/", json={"title": "room"}, headers=alice)
    assert created.status_code == 201, created.text
