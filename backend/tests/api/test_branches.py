"""Branches over HTTP against PostgreSQL: appends chain, a thread shows the active branch with
its forks, PATCH switches branch, a fork copies a path into a new session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings import Settings
from app.main import create_app

Auth = Callable[[str], dict[str, str]]
Headers = dict[str, str]


async def new_session(client: httpx.AsyncClient, headers: Headers, title: str = "chat") -> int:
    response = await client.post("/api/sessions/", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    session_id: int = response.json()["id"]
    return session_id


async def post(
    client: httpx.AsyncClient, sid: int, headers: Headers, content: str, role: str = "user"
) -> Any:
    response = await client.post(
        f"/api/messages/?session_id={sid}", json={"role": role, "content": content}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def thread(client: httpx.AsyncClient, sid: int, headers: Headers, **query: Any) -> Any:
    response = await client.get(f"/api/sessions/{sid}/thread", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def session(client: httpx.AsyncClient, sid: int, headers: Headers) -> Any:
    return (await client.get(f"/api/sessions/{sid}", headers=headers)).json()


async def test_appends_chain_and_the_list_shows_every_parent(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    assert (await session(client, sid, alice))["current_message_id"] is None
    a, b, c = [await post(client, sid, alice, text) for text in "abc"]
    assert (a["parent_id"], b["parent_id"], c["parent_id"]) == (None, a["id"], b["id"])
    listed = (await client.get(f"/api/messages/?session_id={sid}", headers=alice)).json()
    assert listed == [a, b, c]
    assert {"parent_id", "tool_calls", "tool_call_id", "finish_reason", "model"} <= set(a)
    assert (await session(client, sid, alice))["current_message_id"] == c["id"]


async def test_concurrent_appends_form_one_chain(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    """The session row is locked first and the parent read from its newest version: 40
    appends racing for one session chain one under the other, none forks."""
    alice = auth("alice")
    sid = await new_session(client, alice)
    first = await post(client, sid, alice, "first")
    added = await asyncio.gather(*(post(client, sid, alice, f"c{i}") for i in range(40)))
    by_id = sorted([first, *added], key=lambda m: m["id"])
    assert [m["parent_id"] for m in by_id] == [None] + [m["id"] for m in by_id[:-1]]
    async with engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) FROM messages WHERE session_id = :s"), {"s": sid}
        )
    current = await session(client, sid, alice)
    assert current["message_count"] == rows == 41
    assert current["current_message_id"] == by_id[-1]["id"]
    branch = await thread(client, sid, alice, limit=100)
    assert [m["id"] for m in branch] == [m["id"] for m in by_id]
    assert all(m["sibling_ids"] == [m["id"]] for m in branch)


async def test_switching_branch_shows_it_and_appends_under_it(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    a, b, c = [await post(client, sid, alice, text) for text in "abc"]
    before = await session(client, sid, alice)
    switched = await client.patch(
        f"/api/sessions/{sid}", json={"current_message_id": a["id"]}, headers=alice
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["current_message_id"] == a["id"]
    assert switched.json()["title"] == "chat"
    assert switched.json()["updated_at"] > before["updated_at"]
    b2 = await post(client, sid, alice, "b2")
    assert b2["parent_id"] == a["id"]
    branch = await thread(client, sid, alice)
    assert [m["id"] for m in branch] == [a["id"], b2["id"]]
    assert branch[1]["sibling_ids"] == [b["id"], b2["id"]]
    assert [m["parent_id"] for m in branch] == [None, a["id"]]
    # Back to the first branch: its end is current again; nothing was lost.
    await client.patch(f"/api/sessions/{sid}", json={"current_message_id": c["id"]}, headers=alice)
    assert [m["content"] for m in await thread(client, sid, alice)] == ["a", "b", "c"]
    listed = (await client.get(f"/api/messages/?session_id={sid}", headers=alice)).json()
    assert [m["content"] for m in listed] == ["a", "b", "c", "b2"]
    assert (await session(client, sid, alice))["message_count"] == 4


async def test_rename_and_switch_in_one_patch_or_either_alone(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    a, _ = [await post(client, sid, alice, text) for text in "ab"]
    both = await client.patch(
        f"/api/sessions/{sid}",
        json={"title": "  renamed ", "current_message_id": a["id"]},
        headers=alice,
    )
    assert (both.json()["title"], both.json()["current_message_id"]) == ("renamed", a["id"])
    title_only = await client.patch(f"/api/sessions/{sid}", json={"title": "t2"}, headers=alice)
    assert (title_only.json()["title"], title_only.json()["current_message_id"]) == ("t2", a["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, None),
        ({"title": None}, "title"),
        ({"current_message_id": None}, "current_message_id"),
        ({"current_message_id": 0}, "current_message_id"),
        ({"current_message_id": 2**53}, "current_message_id"),
        ({"current_message_id": "x"}, "current_message_id"),
        ({"current_message_id": "{other}"}, "current_message_id"),
        ({"current_message_id": 987654321}, "current_message_id"),
    ],
)
async def test_bad_patches_are_422_and_change_nothing(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, Any], field: str | None
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    await post(client, sid, alice, "a")
    other = await post(client, await new_session(client, alice), alice, "x")
    if body.get("current_message_id") == "{other}":
        body = {"current_message_id": other["id"]}
    before = await session(client, sid, alice)
    response = await client.patch(f"/api/sessions/{sid}", json=body, headers=alice)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert response.json()["errors"][0]["loc"] == ["body", field]
        assert field in response.json()["detail"]
    assert await session(client, sid, alice) == before


async def test_a_long_thread_is_paged_towards_the_root(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    ids = [(await post(client, sid, alice, f"m{i}"))["id"] for i in range(7)]
    seen: list[int] = []
    url: str | None = f"/api/sessions/{sid}/thread?limit=3"
    pages = 0
    while url:
        page = await client.get(url, headers=alice)
        assert page.status_code == 200
        seen = [m["id"] for m in page.json()] + seen
        url = page.links.get("next", {}).get("url")
        pages += 1
    assert (seen, pages) == (ids, 3)
    missing = await client.get(f"/api/sessions/{sid}/thread?before=987654321", headers=alice)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["query", "before"]
    for bad in ("limit=0", "limit=1001", "before=0", "x=1"):
        response = await client.get(f"/api/sessions/{sid}/thread?{bad}", headers=alice)
        assert response.status_code == 422, bad
    assert (await client.get("/api/sessions/987654321/thread", headers=alice)).status_code == 404
    empty = await new_session(client, alice)
    assert await thread(client, empty, alice) == []


async def test_a_fork_copies_the_path_into_a_new_session(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice, "original")
    a = await post(client, sid, alice, "a")
    b = await post(client, sid, alice, "b", role="assistant")
    await post(client, sid, alice, "c")
    forked = await client.post(
        f"/api/sessions/{sid}/fork", json={"message_id": b["id"], "title": "what if"}, headers=alice
    )
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert (fork["title"], fork["message_count"]) == ("what if", 2)
    copies = await thread(client, fork["id"], alice)
    assert [(m["role"], m["content"], m["tokens"]) for m in copies] == [
        ("user", "a", 0),
        ("assistant", "b", 0),
    ]
    assert [m["created_at"] for m in copies] == [a["created_at"], b["created_at"]]
    assert {m["id"] for m in copies}.isdisjoint({a["id"], b["id"]})
    assert copies[1]["parent_id"] == copies[0]["id"]
    assert fork["current_message_id"] == copies[1]["id"]
    # The original is untouched; the fork counts as one of the caller's sessions.
    assert (await session(client, sid, alice))["message_count"] == 3
    me = (await client.get("/api/users/me", headers=alice)).json()
    assert me["session_count"] == 2
    # Without a body: the current message, the original title.
    default = await client.post(f"/api/sessions/{sid}/fork", headers=alice)
    assert (default.json()["title"], default.json()["message_count"]) == ("original", 3)


async def test_a_fork_keeps_the_labels_but_not_the_flags_expiry_or_feedback(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    labels = {"project": "apollo", "customer": "acme"}
    created = await client.post(
        "/api/sessions/",
        json={"title": "labelled", "metadata": labels, "expires_at": "2999-01-01T00:00:00Z"},
        headers=alice,
    )
    sid = created.json()["id"]
    flagged = await client.patch(
        f"/api/sessions/{sid}", json={"archived": True, "pinned": True}, headers=alice
    )
    assert flagged.status_code == 200, flagged.text
    await post(client, sid, alice, "a")
    b = await post(client, sid, alice, "b", role="assistant")
    rated = await client.put(
        f"/api/messages/{b['id']}/feedback", json={"rating": "up"}, headers=alice
    )
    assert rated.status_code == 200, rated.text

    forked = await client.post(f"/api/sessions/{sid}/fork", headers=alice)
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert fork["metadata"] == labels
    assert (fork["archived"], fork["pinned"], fork["expires_at"]) == (False, False, None)
    assert [m["feedback"] for m in await thread(client, fork["id"], alice)] == [None, None]
    listed = await client.get("/api/sessions/?metadata=project:apollo", headers=alice)
    assert [s["id"] for s in listed.json()] == [fork["id"]]  # the original is archived


async def test_a_retried_fork_with_the_same_key_creates_one_session(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    await post(client, sid, alice, "a")
    keyed = {**alice, "Idempotency-Key": "fork-1"}
    first = await client.post(f"/api/sessions/{sid}/fork", json={}, headers=keyed)
    again = await client.post(f"/api/sessions/{sid}/fork", json={}, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len((await client.get("/api/sessions/", headers=alice)).json()) == 2


async def test_a_fork_beyond_the_session_quota_is_409_and_writes_nothing(
    settings: Settings, engine: AsyncEngine, auth: Auth
) -> None:
    app: FastAPI = create_app(
        settings.model_copy(update={"max_sessions_per_user": 1}), engine=engine
    )
    alice = auth("alice")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        sid = await new_session(client, alice)
        await post(client, sid, alice, "a")
        refused = await client.post(f"/api/sessions/{sid}/fork", headers=alice)
        assert refused.status_code == 409
        assert "1 sessions" in refused.json()["detail"]
        assert len((await client.get("/api/sessions/", headers=alice)).json()) == 1
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM messages")) == 1


@pytest.mark.parametrize(
    "body",
    [{"message_id": None}, {"title": ""}, {"title": None}, {"message_id": 0}, {"x": 1}],
)
async def test_bad_forks_are_422(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, Any]
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    await post(client, sid, alice, "a")
    response = await client.post(f"/api/sessions/{sid}/fork", json=body, headers=alice)
    assert response.status_code == 422, response.text
    assert len((await client.get("/api/sessions/", headers=alice)).json()) == 1


async def test_deleting_a_session_takes_its_tree(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    a = await post(client, sid, alice, "a")
    await post(client, sid, alice, "b")
    await client.patch(f"/api/sessions/{sid}", json={"current_message_id": a["id"]}, headers=alice)
    await post(client, sid, alice, "b2")
    assert (await client.delete(f"/api/sessions/{sid}", headers=alice)).status_code == 204
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM messages")) == 0


async def test_an_optional_body_is_an_object_or_nothing(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    headers = {**alice, "Content-Type": "application/json"}
    refused = await client.post(f"/api/sessions/{sid}/fork", content=b"null", headers=headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body"]
    assert len((await client.get("/api/sessions/", headers=alice)).json()) == 1
    assert (await client.post(f"/api/sessions/{sid}/fork", headers=alice)).status_code == 201
