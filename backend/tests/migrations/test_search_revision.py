"""The search, retention and usage revision: messages get their session's owner (backfilled),
the database keeps it equal, and the search columns are built for existing rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.database import downgrade, upgrade, upgrade_over

BEFORE = "06f2d5b06ffe"
REVISION = "8d4e2c1a7b90"

SEED = (
    "INSERT INTO users (auth0_id) VALUES ('a'), ('b')",
    "INSERT INTO sessions (user_id, title) VALUES (1, 'Lisbon trip'), (2, 'Porto')",
    "INSERT INTO messages (session_id, role, content) VALUES "
    "(1, 'user', 'pastel de nata'), (2, 'user', 'francesinha'), (2, 'user', 'port wine')",
)


async def _rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def test_owners_are_backfilled_and_kept_equal_and_the_downgrade_keeps_data(
    scratch_url: str,
) -> None:
    await upgrade_over(scratch_url, BEFORE, SEED, REVISION)
    scratch = create_async_engine(scratch_url)
    try:
        owners = await _rows(scratch, "SELECT id, user_id FROM messages ORDER BY id")
        assert [tuple(row) for row in owners] == [(1, 1), (2, 2), (3, 2)]
        found = await _rows(
            scratch,
            "SELECT id FROM messages WHERE search_vector @@ websearch_to_tsquery('simple', "
            "'wine or nata') ORDER BY id",
        )
        assert [row.id for row in found] == [1, 3]
        titles = await _rows(
            scratch, "SELECT id FROM sessions WHERE search_vector @@ to_tsquery('simple', 'porto')"
        )
        assert [row.id for row in titles] == [2]

        # A message claiming another owner than its session's is refused by the database.
        async with scratch.begin() as conn:
            with pytest.raises(DBAPIError, match="fk_messages_session_id_user_id_sessions"):
                await conn.execute(
                    text(
                        "INSERT INTO messages (session_id, user_id, role, content) "
                        "VALUES (1, 2, 'user', 'x')"
                    )
                )
        async with scratch.begin() as conn:
            with pytest.raises(DBAPIError, match="user_id"):
                await conn.execute(
                    text("INSERT INTO messages (session_id, role, content) VALUES (1, 'user', 'x')")
                )
        # Deleting a session still takes its messages.
        async with scratch.begin() as conn:
            await conn.execute(text("DELETE FROM sessions WHERE id = 2"))
        assert [row.id for row in await _rows(scratch, "SELECT id FROM messages")] == [1]

        await scratch.dispose()
        await downgrade(scratch_url, BEFORE)
        kept = await _rows(scratch, "SELECT id, session_id, content FROM messages")
        assert [tuple(row) for row in kept] == [(1, 1, "pastel de nata")]
        await scratch.dispose()
        await upgrade(scratch_url, "head")
    finally:
        await scratch.dispose()
