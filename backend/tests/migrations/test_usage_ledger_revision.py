"""The revision that makes usage a ledger: it records the ended replies generated here, leaves
out the rest, and is dropped again on the way down."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.database import downgrade, upgrade, upgrade_over

BEFORE = "b7e3a91c5d20"
REVISION = "4f6a2d8c1e35"

SEED = (
    "INSERT INTO users (auth0_id) VALUES ('a')",
    "INSERT INTO sessions (user_id, title) VALUES (1, 't')",
    # 1: generated and completed; 2: generated, failed; 3: still streaming; 4: posted by a
    # client with a token count (no worker key).
    "INSERT INTO messages (session_id, user_id, role, content, status, worker_key, model, "
    "input_tokens, tokens, created_at) VALUES "
    "(1, 1, 'assistant', 'done', 'completed', 7, 'm', 10, 20, '2026-03-01 10:00+00'), "
    "(1, 1, 'assistant', '', 'failed', 7, NULL, 1, 0, '2026-03-02 10:00+00'), "
    "(1, 1, 'assistant', '', 'streaming', 7, 'm', 0, 0, '2026-03-03 10:00+00'), "
    "(1, 1, 'assistant', 'posted', 'completed', NULL, 'm', 5, 500, '2026-03-04 10:00+00')",
)


async def _ledger(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT message_id, user_id, session_id, model, input_tokens, output_tokens, "
                "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM reply_usage "
                "ORDER BY 1"
            )
        )
        return [tuple(row) for row in rows]


async def test_the_ledger_starts_with_the_ended_replies_generated_here(scratch_url: str) -> None:
    await upgrade_over(scratch_url, BEFORE, SEED, REVISION)
    scratch = create_async_engine(scratch_url)
    try:
        assert await _ledger(scratch) == [
            (1, 1, 1, "m", 10, 20, "2026-03-01"),
            (2, 1, 1, None, 1, 0, "2026-03-02"),
        ]
        async with scratch.begin() as conn:  # the ledger outlives the conversation
            await conn.execute(text("DELETE FROM sessions"))
        assert len(await _ledger(scratch)) == 2
        await scratch.dispose()

        await downgrade(scratch_url, BEFORE)
        async with scratch.connect() as conn:
            assert await conn.scalar(text("SELECT to_regclass('reply_usage')")) is None
        await scratch.dispose()
        await upgrade(scratch_url, "head")
        assert await _ledger(scratch) == []  # the messages are gone: nothing to copy
    finally:
        await scratch.dispose()
