"""Structural performance facts: how many SQL statements a request issues."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Message, Receive, Scope, Send

from bench.support.roundtrips import RoundTrips

Auth = Callable[[str], dict[str, str]]


@contextmanager
def count_statements() -> Iterator[list[str]]:
    """The statements sent to PostgreSQL, as the driver sees them."""
    with RoundTrips().installed() as trips:
        yield trips.statements


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
        with count_statements() as statements:
            response = await client.get("/api/sessions/?limit=100", headers=headers)
        assert len(response.json()) == expected
        assert all(s["message_count"] == 2 for s in response.json())
        counts.append(len(statements))
    assert counts[0] == counts[1]
    # The caller is known (warm): one SELECT for the page, no count query per session.
    assert counts[0] == 1, counts


async def test_adding_a_message_is_one_statement(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    session = await client.post("/api/sessions/", json={"title": "t"}, headers=alice)
    with count_statements() as statements:
        response = await client.post(
            f"/api/messages/?session_id={session.json()['id']}",
            json={"role": "user", "content": "hi"},
            headers=alice,
        )
    assert response.status_code == 201
    # The session's counter and recency, and the insert: one statement, its own transaction.
    assert len(statements) == 1, statements
    assert "UPDATE sessions" in statements[0]
    assert "INSERT INTO messages" in statements[0]


async def test_the_connection_is_back_in_the_pool_before_the_response_is_sent(
    app: FastAPI, engine: AsyncEngine, auth: Auth
) -> None:
    """Otherwise a client's next request can arrive while the last one still holds its
    connection, and the pool opens (and discards) an extra one: measured by `make bench`."""
    checked_out: list[int] = []

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                checked_out.append(engine.pool.checkedout())  # type: ignore[attr-defined]
            await send(message)

        await app(scope, receive, watch)

    alice = auth("alice")
    transport = httpx.ASGITransport(app=spy)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        created = await client.post("/api/sessions/", json={"title": "t"}, headers=alice)
        assert created.status_code == 201
        assert (await client.get("/api/sessions/", headers=alice)).status_code == 200
        missing = await client.get("/api/sessions/999999", headers=alice)
        assert missing.status_code == 404
    assert checked_out == [0, 0, 0]
