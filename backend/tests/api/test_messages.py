from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Auth = Callable[[str], dict[str, str]]


async def new_session(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.post("/api/sessions/", json={"title": "chat"}, headers=headers)
    assert response.status_code == 201
    session_id: int = response.json()["id"]
    return session_id


async def test_add_list_get(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    contents = ["Hello, agent!", "Hi! How can I help?", "  keep my spaces  "]
    roles = ["user", "assistant", "user"]
    created = []
    for role, content in zip(roles, contents, strict=True):
        response = await client.post(
            f"/api/messages/?session_id={sid}",
            json={"role": role, "content": content, "tokens": 3},
            headers=alice,
        )
        assert response.status_code == 201, response.text
        created.append(response.json())
    assert created[2]["content"] == "  keep my spaces  "
    assert {"id", "session_id", "role", "content", "tokens", "created_at"} <= set(created[0])

    listed = await client.get(f"/api/messages/?session_id={sid}", headers=alice)
    assert listed.status_code == 200
    assert listed.json() == created
    one = await client.get(f"/api/messages/{created[1]['id']}", headers=alice)
    assert one.json() == created[1]
    session = await client.get(f"/api/sessions/{sid}", headers=alice)
    assert session.json()["message_count"] == 3


async def test_tokens_default_to_zero(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    response = await client.post(
        f"/api/messages/?session_id={sid}", json={"role": "system", "content": "x"}, headers=alice
    )
    assert response.json()["tokens"] == 0


async def test_message_pages_are_chronological_and_complete(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    ids = []
    for i in range(9):
        response = await client.post(
            f"/api/messages/?session_id={sid}",
            json={"role": "user", "content": f"m{i}"},
            headers=alice,
        )
        ids.append(response.json()["id"])
    seen: list[int] = []
    url: str | None = f"/api/messages/?session_id={sid}&limit=4"
    while url:
        page = await client.get(url, headers=alice)
        seen += [m["id"] for m in page.json()]
        url = page.links.get("next", {}).get("url")
    assert seen == ids


async def test_count_is_exact_under_concurrent_inserts(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)

    async def post(i: int) -> int:
        response = await client.post(
            f"/api/messages/?session_id={sid}",
            json={"role": "user", "content": f"c{i}"},
            headers=alice,
        )
        return response.status_code

    statuses = await asyncio.gather(*(post(i) for i in range(40)))
    assert statuses == [201] * 40
    session = await client.get(f"/api/sessions/{sid}", headers=alice)
    async with engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) FROM messages WHERE session_id = :s"), {"s": sid}
        )
    assert session.json()["message_count"] == rows == 40
    # Chronological order agrees with insertion order (ids): timestamps follow the row lock.
    listed = (await client.get(f"/api/messages/?session_id={sid}", headers=alice)).json()
    assert [m["id"] for m in listed] == sorted(m["id"] for m in listed)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "robot", "content": "x"}, "role"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user", "content": "   "}, "content"),
        ({"role": "user", "content": "a\x00b"}, "content"),
        ({"role": "user", "content": "x", "tokens": -1}, "tokens"),
        ({"role": "user", "content": "x", "tokens": 2**31}, "tokens"),
        ({"role": "user", "content": "x" * 100_001}, "content"),
        ({"content": "x"}, "role"),
        ({"role": "user", "content": "x", "session_id": 5}, "session_id"),
    ],
)
async def test_bad_messages_are_422_and_change_nothing(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, object], field: str
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    response = await client.post(f"/api/messages/?session_id={sid}", json=body, headers=alice)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["detail"]
    assert (await client.get(f"/api/messages/?session_id={sid}", headers=alice)).json() == []
    assert (await client.get(f"/api/sessions/{sid}", headers=alice)).json()["message_count"] == 0


async def test_message_for_missing_session_is_404(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    response = await client.post(
        "/api/messages/?session_id=999999", json={"role": "user", "content": "x"}, headers=alice
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "session 999999 not found"
    listing = await client.get("/api/messages/?session_id=999999", headers=alice)
    assert listing.status_code == 404


async def test_session_id_is_required(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.get("/api/messages/", headers=auth("alice"))
    assert response.status_code == 422
    assert "session_id" in response.json()["detail"]
