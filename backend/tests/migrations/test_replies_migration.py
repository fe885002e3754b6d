"""The replies revision applies and reverts cleanly, data included, on a scratch database."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.database import downgrade, upgrade

BEFORE_REPLIES = "bd802d9743a4"
#: A revision whose messages still take these raw inserts (later ones add `user_id`).
TREES = "5236198b7de9"


async def test_replies_revision_round_trips(scratch_url: str) -> None:
    await upgrade(scratch_url, BEFORE_REPLIES)
    scratch = create_async_engine(scratch_url)
    try:
        async with scratch.begin() as conn:
            for statement in (
                "INSERT INTO users (auth0_id) VALUES ('a')",
                "INSERT INTO sessions (user_id, title) VALUES (1, 't')",
                "INSERT INTO messages (session_id, role, content) VALUES (1, 'user', 'hi')",
            ):
                await conn.execute(text(statement))
        await upgrade(scratch_url, TREES)
        async with scratch.begin() as conn:
            old = (await conn.execute(text("SELECT status, input_tokens FROM messages"))).one()
            assert tuple(old) == ("completed", 0)
            await conn.execute(
                text(
                    "INSERT INTO messages (session_id, role, content, status) "
                    "VALUES (1, 'assistant', '', 'failed')"
                )
            )
        async with scratch.begin() as conn:
            with pytest.raises(DBAPIError, match="ck_messages_content_not_empty"):
                await conn.execute(
                    text("INSERT INTO messages (session_id, role, content) VALUES (1, 'user', '')")
                )
        await scratch.dispose()
        await downgrade(scratch_url, BEFORE_REPLIES)
        async with scratch.connect() as conn:
            contents = (await conn.execute(text("SELECT content FROM messages ORDER BY id"))).all()
        assert [row.content for row in contents] == ["hi", "(no reply)"]
        await scratch.dispose()
        await upgrade(scratch_url, "head")
    finally:
        await scratch.dispose()
