"""A chunk stored by an append whose answer was lost is never stored twice, nor taken for
unstorable text: committed already, the next append skips it; still in flight, the next append
waits for it, then skips it."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.persistence.repositories.replies import Chunk
from app.persistence.unit_of_work import unit_of_work_factory
from app.replies.live import RunningReply
from app.replies.store import ReplyStore
from app.replies.writer import ProgressWriter


async def _streaming_reply(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        message_id = await conn.scalar(
            text(
                "WITH u AS (INSERT INTO users (auth0_id) VALUES ('writer') RETURNING id), "
                "s AS (INSERT INTO sessions (user_id, title) SELECT id, 's' FROM u "
                "RETURNING id, user_id) "
                "INSERT INTO messages (session_id, user_id, role, content, status) "
                "SELECT id, user_id, 'assistant', '', 'streaming' FROM s RETURNING id"
            )
        )
    return int(message_id)


async def _chunks(engine: AsyncEngine) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT start_offset, text FROM reply_chunks ORDER BY 1"))
        return [(row.start_offset, row.text) for row in rows]


async def test_a_chunk_committed_without_an_answer_is_skipped_and_the_reply_goes_on(
    engine: AsyncEngine,
) -> None:
    message_id = await _streaming_reply(engine)
    async with engine.begin() as conn:  # the earlier append committed; its answer was lost
        await conn.execute(
            text("INSERT INTO reply_chunks VALUES (:id, 0, 'hello')"), {"id": message_id}
        )
    running: dict[int, RunningReply] = {}
    writer = ProgressWriter(ReplyStore(unit_of_work_factory(engine)), running, flush_s=3600)
    reply = running[message_id] = RunningReply(message_id, writer.save_final)
    reply.append("hello wor")
    await writer.flush()  # sends (0, "hello wor"): already there, so the stored end is read
    assert (reply.persisted, reply.stop_reason) == (len("hello"), None)
    reply.append("ld")
    await writer.flush()
    assert reply.persisted == len("hello world")
    assert await _chunks(engine) == [(0, "hello"), (5, " world")]


async def test_a_chunk_still_in_flight_is_waited_for_then_skipped(engine: AsyncEngine) -> None:
    message_id = await _streaming_reply(engine)
    store = ReplyStore(unit_of_work_factory(engine))
    async with engine.connect() as earlier:  # the earlier append, not committed yet
        await earlier.execute(
            text("INSERT INTO reply_chunks VALUES (:id, 0, 'hi')"), {"id": message_id}
        )
        append = asyncio.create_task(store.append([Chunk(message_id, 0, "hi")], [message_id]))
        async with engine.connect() as conn:
            for _ in range(200):  # until the append waits on the earlier one's key entry
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND query LIKE '%reply_chunks%'"
                    )
                )
                if waiting or append.done():
                    break
                await asyncio.sleep(0.02)
        assert not append.done()
        await earlier.commit()
        states = await asyncio.wait_for(append, timeout=10)
    assert [(s.message_id, s.status, s.appended) for s in states] == [
        (message_id, "streaming", False)
    ]
    assert await _chunks(engine) == [(0, "hi")]
