"""The revision that replaces the chunks' foreign key by a trigger and the orphan sweep: it
applies to existing data, deletes with the message, and reverts to the key."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.database import downgrade, upgrade, upgrade_over

BEFORE = "8d4e2c1a7b90"
REVISION = "b7e3a91c5d20"

SEED = (
    "INSERT INTO users (auth0_id) VALUES ('a')",
    "INSERT INTO sessions (user_id, title) VALUES (1, 't')",
    "INSERT INTO messages (session_id, user_id, role, content, status) VALUES "
    "(1, 1, 'assistant', '', 'streaming'), (1, 1, 'assistant', 'done', 'completed')",
    # Message 2 ended but kept a chunk (an append that raced its final state).
    "INSERT INTO reply_chunks (message_id, start_offset, text) VALUES "
    "(1, 0, 'he'), (1, 2, 'llo'), (2, 4, 'stray')",
)


async def _chunks(engine: AsyncEngine) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT message_id, start_offset FROM reply_chunks ORDER BY 1, 2")
        )
        return [(row.message_id, row.start_offset) for row in rows]


async def _run(engine: AsyncEngine, statement: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement))


async def test_chunks_follow_their_message_without_a_key_and_the_key_comes_back(
    scratch_url: str,
) -> None:
    await upgrade_over(scratch_url, BEFORE, SEED, REVISION)
    scratch = create_async_engine(scratch_url)
    try:
        assert await _chunks(scratch) == [(1, 0), (1, 2)]  # the stray chunk is gone
        await _run(scratch, "INSERT INTO reply_chunks VALUES (99, 0, 'no message')")  # no key
        await _run(scratch, "DELETE FROM messages WHERE id = 2")  # not streaming: no trigger work
        assert await _chunks(scratch) == [(1, 0), (1, 2), (99, 0)]
        await _run(scratch, "DELETE FROM messages WHERE id = 1")
        assert await _chunks(scratch) == [(99, 0)]

        await _run(
            scratch,
            "INSERT INTO messages (id, session_id, user_id, role, content, status) "
            "OVERRIDING SYSTEM VALUE VALUES (3, 1, 1, 'assistant', '', 'streaming')",
        )
        await _run(scratch, "INSERT INTO reply_chunks VALUES (3, 0, 'kept')")
        await scratch.dispose()
        await downgrade(scratch_url, BEFORE)
        assert await _chunks(scratch) == [(3, 0)]  # a chunk without a message cannot stay
        async with scratch.begin() as conn:
            with pytest.raises(DBAPIError, match="fk_reply_chunks_message_id_messages"):
                await conn.execute(text("INSERT INTO reply_chunks VALUES (99, 0, 'x')"))
        await _run(scratch, "DELETE FROM sessions")  # the key's cascade is back
        assert await _chunks(scratch) == []
        await scratch.dispose()
        await upgrade(scratch_url, "head")
    finally:
        await scratch.dispose()
