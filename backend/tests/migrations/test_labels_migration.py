"""The metadata, flags and feedback revision: existing rows get the defaults, the database holds
the new rules, and the downgrade keeps every session and message (dropping only the new
fields)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.database import downgrade, upgrade

BEFORE_LABELS = "5236198b7de9"

SEED = (
    "INSERT INTO users (auth0_id) VALUES ('a')",
    "INSERT INTO sessions (user_id, title) VALUES (1, 'old')",
    "INSERT INTO messages (session_id, role, content) VALUES (1, 'user', 'q')",
    "INSERT INTO messages (session_id, parent_id, role, content) VALUES (1, 1, 'assistant', 'a')",
)


async def _rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def _seeded(url: str) -> AsyncEngine:
    await upgrade(url, BEFORE_LABELS)
    scratch = create_async_engine(url)
    async with scratch.begin() as conn:
        for statement in SEED:
            await conn.execute(text(statement))
    await scratch.dispose()
    await upgrade(url, "head")
    return scratch


async def test_existing_rows_get_the_defaults_and_survive_the_downgrade(scratch_url: str) -> None:
    scratch = await _seeded(scratch_url)
    try:
        sessions = await _rows(scratch, "SELECT metadata, archived, pinned FROM sessions")
        assert [tuple(row) for row in sessions] == [({}, False, False)]
        async with scratch.begin() as conn:
            await conn.execute(text('UPDATE sessions SET metadata = \'{"k": "v"}\', pinned = true'))
            await conn.execute(
                text(
                    "UPDATE messages SET feedback_rating = 'up', feedback_comment = 'ok', "
                    "feedback_at = now() WHERE id = 2"
                )
            )
        await scratch.dispose()
        await downgrade(scratch_url, BEFORE_LABELS)
        assert [tuple(r) for r in await _rows(scratch, "SELECT id FROM messages ORDER BY id")] == [
            (1,),
            (2,),
        ]
        columns = await _rows(
            scratch,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name IN ('sessions', 'messages') AND (column_name LIKE 'feedback%' "
            "OR column_name IN ('metadata', 'archived', 'pinned'))",
        )
        assert columns == []
        await scratch.dispose()
        await upgrade(scratch_url, "head")
        again = await _rows(scratch, "SELECT metadata, pinned FROM sessions")
        assert [tuple(row) for row in again] == [({}, False)]
    finally:
        await scratch.dispose()


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        ("UPDATE sessions SET metadata = '[]'", "ck_sessions_metadata_object"),
        (
            "UPDATE messages SET feedback_rating = 'up', feedback_at = now() WHERE id = 1",
            "ck_messages_feedback_on_assistant",
        ),
        (
            "UPDATE messages SET feedback_rating = 'meh', feedback_at = now() WHERE id = 2",
            "ck_messages_feedback_on_assistant",
        ),
        (
            "UPDATE messages SET feedback_rating = 'up' WHERE id = 2",
            "ck_messages_feedback_complete",
        ),
        (
            "UPDATE messages SET feedback_comment = 'no rating' WHERE id = 2",
            "ck_messages_feedback_complete",
        ),
        (
            "UPDATE messages SET feedback_rating = 'up', feedback_at = now(), "
            "feedback_comment = repeat('x', 2001) WHERE id = 2",
            "ck_messages_feedback_comment_length",
        ),
    ],
)
async def test_the_database_holds_the_rules_too(
    scratch_url: str, statement: str, constraint: str
) -> None:
    scratch = await _seeded(scratch_url)
    try:
        async with scratch.begin() as conn:
            with pytest.raises(DBAPIError, match=constraint):
                await conn.execute(text(statement))
    finally:
        await scratch.dispose()
