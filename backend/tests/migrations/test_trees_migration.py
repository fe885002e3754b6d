"""The trees revision: existing messages become one chain per session, current = the last;
its constraints hold; the downgrade keeps every message."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.database import downgrade, upgrade, upgrade_over

BEFORE_TREES = "3c1f9a4e2b7d"
#: The revision under test (later ones add columns these raw inserts do not fill).
TREES = "5236198b7de9"

# Session 1: three messages stamped in id order. Session 2: the first revision's application
# timestamps put message 5 after message 6. Session 3: no messages.
SEED = (
    "INSERT INTO users (auth0_id) VALUES ('a')",
    "INSERT INTO sessions (user_id, title) VALUES (1, 'chain'), (1, 'inverted'), (1, 'empty')",
    "INSERT INTO messages (session_id, role, content, created_at) VALUES "
    "(1, 'user', 'u1', '2026-01-01 10:00'), (1, 'assistant', 'a1', '2026-01-01 10:01'), "
    "(1, 'user', 'u2', '2026-01-01 10:01'), "
    "(2, 'user', 'x', '2026-01-01 09:00'), (2, 'user', 'y', '2026-01-01 09:02'), "
    "(2, 'user', 'z', '2026-01-01 09:01')",
)


async def _rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def test_existing_messages_become_one_chain_per_session(scratch_url: str) -> None:
    await upgrade_over(scratch_url, BEFORE_TREES, SEED, TREES)
    scratch = create_async_engine(scratch_url)
    try:
        parents = await _rows(scratch, "SELECT id, parent_id FROM messages ORDER BY id")
        # By (created_at, id) in session 1: 1 → 2 → 3 (2 and 3 share a time: id decides).
        # Session 2 by time would be 4 → 6 → 5, whose 6 → 5 breaks parent_id < id: by id.
        assert [tuple(row) for row in parents] == [
            (1, None),
            (2, 1),
            (3, 2),
            (4, None),
            (5, 4),
            (6, 5),
        ]
        currents = await _rows(scratch, "SELECT id, current_message_id FROM sessions ORDER BY id")
        assert [tuple(row) for row in currents] == [(1, 3), (2, 6), (3, None)]
    finally:
        await scratch.dispose()


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        # A parent in another session.
        (
            "INSERT INTO messages (session_id, parent_id, role, content) "
            "VALUES (2, 1, 'user', 'x')",
            "fk_messages_parent_id_messages",
        ),
        # A parent that is not older than its child (a cycle would need one).
        ("UPDATE messages SET parent_id = 3 WHERE id = 2", "ck_messages_parent_before_child"),
        # A session pointing at another session's message.
        ("UPDATE sessions SET current_message_id = 4 WHERE id = 1", "fk_sessions_current_mess"),
        (
            "INSERT INTO messages (session_id, role, content, tool_call_id) "
            "VALUES (1, 'user', 'x', 'call_1')",
            "ck_messages_tool_call_id_on_tool",
        ),
        (
            "INSERT INTO messages (session_id, role, content, tool_calls) "
            "VALUES (1, 'user', 'x', '[]')",
            "ck_messages_tool_calls_on_assistant",
        ),
        (
            "INSERT INTO messages (session_id, role, content, finish_reason) "
            "VALUES (1, 'assistant', 'x', 'bored')",
            "ck_messages_finish_reason_known",
        ),
    ],
)
async def test_the_database_refuses_broken_trees(
    scratch_url: str, statement: str, constraint: str
) -> None:
    await upgrade_over(scratch_url, BEFORE_TREES, SEED, TREES)
    scratch = create_async_engine(scratch_url)
    try:
        async with scratch.begin() as conn:
            with pytest.raises(DBAPIError, match=constraint):
                await conn.execute(text(statement))
    finally:
        await scratch.dispose()


async def test_deleting_a_message_empties_only_the_pointer_and_takes_its_subtree(
    scratch_url: str,
) -> None:
    await upgrade_over(scratch_url, BEFORE_TREES, SEED, TREES)
    scratch = create_async_engine(scratch_url)
    try:
        async with scratch.begin() as conn:
            await conn.execute(text("DELETE FROM messages WHERE id = 2"))
        assert [tuple(r) for r in await _rows(scratch, "SELECT id FROM messages WHERE id < 4")] == [
            (1,)
        ]
        sessions = await _rows(scratch, "SELECT id, current_message_id FROM sessions ORDER BY id")
        assert [tuple(row) for row in sessions] == [(1, None), (2, 6), (3, None)]
    finally:
        await scratch.dispose()


async def test_downgrade_keeps_every_message_and_upgrade_chains_them_again(
    scratch_url: str,
) -> None:
    await upgrade_over(scratch_url, BEFORE_TREES, SEED, TREES)
    scratch = create_async_engine(scratch_url)
    try:
        async with scratch.begin() as conn:
            # A branch (7 answers 1, beside 2) and a reply that only calls a tool.
            await conn.execute(
                text(
                    "INSERT INTO messages (session_id, parent_id, role, content, tool_calls, "
                    "finish_reason, model) VALUES (1, 1, 'assistant', '', "
                    """'[{"id": "c1", "type": "function", "function": """
                    """{"name": "f", "arguments": "{}"}}]', 'tool_calls', 'm')"""
                )
            )
        await scratch.dispose()
        await downgrade(scratch_url, BEFORE_TREES)
        contents = await _rows(scratch, "SELECT id, content FROM messages ORDER BY id")
        assert [row.id for row in contents] == [1, 2, 3, 4, 5, 6, 7]
        assert contents[-1].content.startswith('(tool calls) [{"id": "c1"')
        await scratch.dispose()
        await upgrade(scratch_url, TREES)
        # Listed by (created_at, id), 7 is now the newest message of session 1: the chain's end.
        currents = await _rows(scratch, "SELECT current_message_id FROM sessions ORDER BY id")
        assert [row.current_message_id for row in currents] == [7, 6, None]
    finally:
        await scratch.dispose()
