"""The hot statements are planned once per connection, and their one plan uses the indexes.

PostgreSQL re-plans a prepared statement on every execution while a plan made for the given
values looks cheaper than the generic one; for the message insert (a recursive CTE guarded by
`$n IS NOT NULL`, now kept for tool results), the message page (`LIMIT $n`) and the reply
finish (`unnest` of arrays), that was always: planning cost more than running them (3.2 ms
against 0.8 ms per insert). The pool's connections use `plan_cache_mode = force_generic_plan`
(app/core/database.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_engine
from app.core.settings import Settings
from app.main import create_app
from app.persistence.repositories.base import Sql
from app.persistence.repositories.messages import _ADD, _ADD_PLAIN, _LIST
from app.persistence.repositories.replies import _FINISH
from tests.api.test_queries import _scans

Auth = Callable[[str], dict[str, str]]
ROUNDS = 6


async def test_hot_statements_are_planned_once(settings: Settings, auth: Auth) -> None:
    # One connection, so every statement's plan cache is on the one we read.
    engine = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    app = create_app(
        settings.model_copy(
            update={"llm_provider": "simulated", "simulated_tokens": 3, "simulated_delay_ms": 1}
        ),
        engine=engine,
    )
    alice = auth("alice")
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            for i in range(ROUNDS):
                sid = (
                    await c.post("/api/sessions/", json={"title": f"s{i}"}, headers=alice)
                ).json()["id"]
                posted = await c.post(
                    f"/api/messages/?session_id={sid}",
                    json={"role": "user", "content": "hello"},
                    headers=alice,
                )
                assert posted.status_code == 201
                for path in [
                    f"/api/messages/?session_id={sid}&limit=20",
                    f"/api/sessions/{sid}",
                    "/api/sessions/?limit=50",
                ]:
                    assert (await c.get(path, headers=alice)).status_code == 200
                async with c.stream(
                    "POST", f"/api/sessions/{sid}/replies", json={"content": "hi"}, headers=alice
                ) as streamed:
                    assert "event: done" in (await streamed.aread()).decode()
            rows = await app.state.services.new_uow().read(
                Sql(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement NOT LIKE '%pg_prepared_statements%'"
                )
            )
    finally:
        await engine.dispose()
    replanned = [(r["statement"][:80], r["custom_plans"]) for r in rows if r["custom_plans"]]
    assert replanned == []
    reused = {r["statement"] for r in rows if r["generic_plans"] >= ROUNDS}
    # The three that were re-planned on every execution before.
    assert {_ADD_PLAIN.sql, _LIST[False].sql, _FINISH.sql} <= reused


async def _generic_plan(engine: AsyncEngine, statement: Sql, params: dict[str, Any]) -> Any:
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        explained = await driver.fetchval(
            "EXPLAIN (FORMAT JSON) " + statement.sql, *statement.args(params)
        )
    # SQLAlchemy's connections decode json themselves; a bare asyncpg one answers text.
    return json.loads(explained) if isinstance(explained, str) else explained


async def test_the_generic_plans_read_the_indexes(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    """With enough rows for the planner to weigh a scan (thousands of sessions, some with a
    thousand messages),
    the plans made without the values still read one session's rows by index."""
    alice = auth("alice")
    sid = (await client.post("/api/sessions/", json={"title": "big"}, headers=alice)).json()["id"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "WITH s AS (INSERT INTO sessions (user_id, title) "
                "SELECT user_id, 'other ' || g FROM sessions, generate_series(1, 2000) AS g "
                "WHERE id = :sid RETURNING id, user_id) "
                "INSERT INTO messages (session_id, user_id, role, content) "
                "SELECT s.id, s.user_id, 'user', 'message ' || g "
                "FROM (SELECT * FROM s LIMIT 20) AS s, generate_series(1, 1000) AS g"
            ),
            {"sid": sid},
        )
        await conn.execute(text("ANALYZE messages, sessions"))
        user_id = await conn.scalar(
            text("SELECT user_id FROM sessions WHERE id = :sid"), {"sid": sid}
        )
    page = {"session_id": sid, "user_id": user_id, "skip": 0, "limit": 20}
    listed = _scans(await _generic_plan(engine, _LIST[False], page))
    add = {
        "user_id": user_id,
        "session_id": sid,
        "role": "user",
        "content": "x",
        "tokens": 0,
        "max_messages": 1000,
        "tool_calls": None,
        "tool_call_id": None,
        "call": None,
    }
    added = _scans(await _generic_plan(engine, _ADD, add))
    plain = _scans(await _generic_plan(engine, _ADD_PLAIN, add))
    for scans in (listed, added, plain):
        assert not [s for s in scans if s[0] == "Seq Scan"], scans
    assert ("Index Scan", "messages", "ix_messages_session_id_created_at_id") in listed, listed
