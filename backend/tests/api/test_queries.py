"""Structural performance facts: how many SQL statements a request issues."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

Auth = Callable[[str], dict[str, str]]


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def _seed(client: httpx.AsyncClient, headers: dict[str, str], sessions: int) -> None:
    for i in range(sessions):
        created = await client.post("/api/sessions/", json={"title": f"s{i}"}, headers=headers)
        for j in range(2):
            await client.post(
                f"/api/messages/?session_id={created.json()['id']}",
                json={"role": "user", "content": f"m{j}"},
                headers=headers,
            )


async def test_listing_sessions_costs_the_same_for_3_or_40_sessions(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    few, many = auth("few"), auth("many")
    await _seed(client, few, 3)
    await _seed(client, many, 40)
    await client.get("/api/sessions/", headers=few)  # provision + warm up

    counts = []
    for headers, expected in ((few, 3), (many, 40)):
        with count_statements(engine) as statements:
            response = await client.get("/api/sessions/?limit=100", headers=headers)
        assert len(response.json()) == expected
        assert all(s["message_count"] == 2 for s in response.json())
        counts.append(len(statements))
    assert counts[0] == counts[1]
    # Resolve the caller, then one SELECT for the page: no count query per session.
    assert counts[0] == 2, counts


async def test_adding_a_message_is_one_transaction_of_three_statements(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    session = await client.post("/api/sessions/", json={"title": "t"}, headers=alice)
    with count_statements(engine) as statements:
        response = await client.post(
            f"/api/messages/?session_id={session.json()['id']}",
            json={"role": "user", "content": "hi"},
            headers=alice,
        )
    assert response.status_code == 201
    kinds = [s.split()[0].upper() for s in statements]
    assert kinds == ["SELECT", "UPDATE", "INSERT"], statements
