"""Keyset pages when rows share their timestamp: the cursor must compare `(timestamp, id)`.

A user message and the assistant reply started with it are saved in one statement and share
`created_at`; two sessions can share `updated_at`. Paging one row at a time through the `Link`
header must still list every row exactly once, in the documented total order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Auth = Callable[[str], dict[str, str]]


async def _follow_links(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[Any]:
    """Every item of every page, following `Link: rel="next"` until the last page."""
    seen: list[Any] = []
    next_url: str | None = url
    for _ in range(50):  # bounded: a cursor that never advances must fail, not loop
        if next_url is None:
            return seen
        page = await client.get(next_url, headers=headers)
        assert page.status_code == 200, page.text
        seen += page.json()
        next_url = page.links.get("next", {}).get("url")
    raise AssertionError(f"still paging after 50 pages: {seen}")


async def _reply(
    client: httpx.AsyncClient, sid: int, content: str, headers: dict[str, str]
) -> None:
    response = await client.post(
        f"/api/sessions/{sid}/replies", json={"content": content}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert "event: done" in response.text


async def test_message_pages_keep_both_rows_of_an_exchange(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = (await client.post("/api/sessions/", json={"title": "ties"}, headers=alice)).json()["id"]
    await _reply(client, sid, "first question", alice)
    plain = await client.post(
        f"/api/messages/?session_id={sid}", json={"role": "user", "content": "aside"}, headers=alice
    )
    assert plain.status_code == 201
    await _reply(client, sid, "second question", alice)

    listed = (await client.get(f"/api/messages/?session_id={sid}", headers=alice)).json()
    assert [m["role"] for m in listed] == ["user", "assistant", "user", "user", "assistant"]
    # The premise: each exchange's two rows share their timestamp.
    assert listed[0]["created_at"] == listed[1]["created_at"]
    assert listed[3]["created_at"] == listed[4]["created_at"]
    expected = sorted((m["created_at"], m["id"]) for m in listed)
    assert [(m["created_at"], m["id"]) for m in listed] == expected

    paged = await _follow_links(client, f"/api/messages/?session_id={sid}&limit=1", alice)
    assert [m["id"] for m in paged] == [m["id"] for m in listed]
    paged_by_two = await _follow_links(client, f"/api/messages/?session_id={sid}&limit=2", alice)
    assert [m["id"] for m in paged_by_two] == [m["id"] for m in listed]


async def test_session_pages_keep_sessions_with_the_same_updated_at(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    ids = []
    for i in range(5):
        created = await client.post("/api/sessions/", json={"title": f"s{i}"}, headers=alice)
        ids.append(created.json()["id"])
    # Sessions 1, 2 and 3 (0-based) share one `updated_at`, between those of 0 and 4.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE sessions SET updated_at = (SELECT updated_at FROM sessions WHERE id = :a) "
                "WHERE id = ANY(:tied)"
            ),
            {"a": ids[1], "tied": ids[1:4]},
        )
    listed = (await client.get("/api/sessions/", headers=alice)).json()
    assert len({s["updated_at"] for s in listed}) == 3
    # Most recently active first; among equals, the higher id first.
    assert [s["id"] for s in listed] == [ids[4], ids[3], ids[2], ids[1], ids[0]]

    paged = await _follow_links(client, "/api/sessions/?limit=1", alice)
    assert [s["id"] for s in paged] == [s["id"] for s in listed]
    paged_by_two = await _follow_links(client, "/api/sessions/?limit=2", alice)
    assert [s["id"] for s in paged_by_two] == [s["id"] for s in listed]
