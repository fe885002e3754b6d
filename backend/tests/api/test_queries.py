"""Structural performance facts: how many SQL statements a request issues."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Message, Receive, Scope, Send

from app.persistence.repositories.messages import _THREAD
from bench.support.database import BenchDatabase
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


BRANCH = 1_000
MESSAGES = 10_000

# One session of MESSAGES messages: the first BRANCH (by id) chained, the current message at
# its end; every other message a child of a message of that chain (9 more siblings for each).
_SEED_TREE = (
    "INSERT INTO users (auth0_id) VALUES ('trees')",
    "INSERT INTO sessions (user_id, title, message_count) "
    f"SELECT id, 'long', {MESSAGES} FROM users WHERE auth0_id = 'trees'",
    "INSERT INTO messages (session_id, user_id, role, content, created_at) "
    "SELECT s.id, s.user_id, 'user', 'message ' || g, now() + g * interval '1 millisecond' "
    f"FROM sessions AS s, generate_series(1, {MESSAGES}) AS g",
    f"""
    WITH ranked AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM messages),
    chain AS (SELECT id, n FROM ranked WHERE n <= {BRANCH})
    UPDATE messages AS m SET parent_id = CASE
        WHEN r.n <= {BRANCH} THEN (SELECT id FROM chain WHERE chain.n = r.n - 1)
        ELSE (SELECT id FROM chain WHERE chain.n = r.n % {BRANCH} + 1) END
    FROM ranked AS r WHERE m.id = r.id
    """,
    "UPDATE sessions SET current_message_id = "
    f"(SELECT id FROM messages ORDER BY id OFFSET {BRANCH - 1} LIMIT 1)",
    "ANALYZE messages",
)


async def _seed_tree(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        for statement in _SEED_TREE[:-1]:
            await conn.execute(text(statement))
        session_id: int = await conn.scalar(text("SELECT id FROM sessions"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(_SEED_TREE[-1]))
    return session_id


def _scans(plan: Any) -> list[tuple[str, str, str | None]]:
    """(node type, table, index) of every scan in an EXPLAIN (FORMAT JSON) plan."""
    found = []
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.append((plan["Node Type"], plan["Relation Name"], plan.get("Index Name")))
        for value in plan.values():
            found += _scans(value)
    elif isinstance(plan, list):
        for value in plan:
            found += _scans(value)
    return found


async def test_the_thread_of_a_long_branch_is_one_statement_by_index(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine, migrated_url: str
) -> None:
    """1,000 messages of a 10,000-message session: one statement, walked up by primary key,
    siblings found by the (session_id, parent_id) index; no scan of the session's messages."""
    sid = await _seed_tree(engine)
    trees = auth("trees")
    url = f"/api/sessions/{sid}/thread?limit={BRANCH}"
    await client.get(url, headers=trees)  # warm: the caller is known, the statement prepared
    with count_statements() as statements:
        response = await client.get(url, headers=trees)
    assert len(statements) == 1, statements
    branch = response.json()
    assert len(branch) == BRANCH
    assert [m["content"] for m in branch[:2]] == ["message 1", "message 2"]
    assert branch[0]["parent_id"] is None
    assert all(m["parent_id"] == p["id"] for p, m in pairwise(branch))
    assert [len(m["sibling_ids"]) for m in branch[:3]] == [1, 10, 10]
    assert branch[1]["sibling_ids"][0] == branch[1]["id"]  # the chain's message is the oldest
    assert "link" not in response.headers  # the branch starts at the root

    conn = await BenchDatabase(url=migrated_url, embedded=False).connect()
    try:
        user_id = await conn.fetchval("SELECT user_id FROM sessions WHERE id = $1", sid)
        params = {"session_id": sid, "user_id": user_id, "before": None}
        explained = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) {_THREAD.sql}", *_THREAD.args({**params, "limit": BRANCH})
        )
    finally:
        await conn.close()
    scans = _scans(json.loads(explained))
    # The walk: unique lookups by id (the primary key, or the (session_id, id) key for the
    # anchor); the siblings: the (session_id, parent_id) index.
    used = {index for _, table, index in scans if table == "messages"}
    assert "ix_messages_session_id_parent_id" in used, scans
    assert used <= {"pk_messages", "uq_messages_session_id_id", "ix_messages_session_id_parent_id"}
    assert not [scan for scan in scans if scan[0] == "Seq Scan"], scans
