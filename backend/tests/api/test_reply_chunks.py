"""Reply chunks never outlive their reply. They have no foreign key (its check would lock the
message row for every chunk appended): a trigger deletes a streaming reply's chunks with it, on
every path that deletes messages, and the orphan sweep deletes chunks left by a race."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import ConnectParams
from app.core.settings import Settings
from app.persistence.repositories.replies import LOCK_NAMESPACE
from app.persistence.retention import RetentionPolicy, RetentionSweeper
from app.persistence.unit_of_work import unit_of_work_factory
from app.replies.store import ReplyStore

Auth = Callable[[str], dict[str, str]]

#: A worker key "held by a live process" (a connection of the test holds its lock).
LIVE_KEY = 4242


async def _streaming_reply(
    client: httpx.AsyncClient, engine: AsyncEngine, headers: dict[str, str], title: str
) -> tuple[int, int]:
    """A session whose reply is streaming (under a user message) with two chunks stored;
    returns (session id, user message id)."""
    created = await client.post("/api/sessions/", json={"title": title}, headers=headers)
    sid: int = created.json()["id"]
    async with engine.begin() as conn:
        asked = await conn.scalar(
            text(
                "INSERT INTO messages (session_id, user_id, role, content) "
                "SELECT id, user_id, 'user', 'q' FROM sessions WHERE id = :sid RETURNING id"
            ),
            {"sid": sid},
        )
        await conn.execute(
            text(
                "WITH m AS (INSERT INTO messages (session_id, user_id, parent_id, role, content, "
                "status, worker_key) SELECT id, user_id, :asked, 'assistant', '', 'streaming', "
                ":key FROM sessions WHERE id = :sid RETURNING id) "
                "INSERT INTO reply_chunks (message_id, start_offset, text) "
                "SELECT m.id, o.start, 'abc' FROM m, (VALUES (0), (3)) AS o(start)"
            ),
            {"sid": sid, "asked": asked, "key": LIVE_KEY},
        )
    return sid, int(asked)


async def _chunk_titles(engine: AsyncEngine) -> list[str]:
    """The titles of the sessions whose chunks are still stored (NULL: a stray chunk)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT coalesce(s.title, '(none)') AS title FROM reply_chunks AS c "
                "LEFT JOIN messages AS m ON m.id = c.message_id "
                "LEFT JOIN sessions AS s ON s.id = m.session_id ORDER BY 1"
            )
        )
        return [row.title for row in rows]


async def test_every_way_a_streaming_reply_is_deleted_takes_its_chunks(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, auth: Auth
) -> None:
    alice, bob = auth("alice"), auth("bob")
    deleted, _ = await _streaming_reply(client, engine, alice, "deleted session")
    _, parent = await _streaming_reply(client, engine, alice, "deleted parent")
    idle, _ = await _streaming_reply(client, engine, alice, "idle session")
    await _streaming_reply(client, engine, alice, "kept")
    await _streaming_reply(client, engine, bob, "erased account")
    assert len(await _chunk_titles(engine)) == 10

    assert (await client.delete(f"/api/sessions/{deleted}", headers=alice)).status_code == 204
    async with engine.begin() as conn:  # a parent's delete cascades to its replies
        await conn.execute(text("DELETE FROM messages WHERE id = :id"), {"id": parent})
        await conn.execute(
            text("UPDATE sessions SET updated_at = now() - interval '31 days' WHERE id = :id"),
            {"id": idle},
        )
    assert settings.database_url is not None
    policy = RetentionPolicy(retention_days=30, batch_size=10, pause_s=0)
    report = await RetentionSweeper(ConnectParams.from_url(settings.database_url), policy).sweep()
    assert report is not None
    assert sum(report.idle) == 1
    assert (await client.delete("/api/users/me", headers=bob)).status_code == 204

    assert await _chunk_titles(engine) == ["kept", "kept"]


async def test_the_orphan_sweep_deletes_chunks_whose_reply_is_gone_or_ended(
    client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth
) -> None:
    """An append that commits after a concurrent delete or final state leaves such chunks."""
    alice = auth("alice")
    await _streaming_reply(client, engine, alice, "live")
    ended, _ = await _streaming_reply(client, engine, alice, "ended")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE messages SET status = 'completed', content = 'abcabc' "
                "WHERE session_id = :sid AND role = 'assistant'"
            ),
            {"sid": ended},
        )
        gone = await conn.scalar(text("SELECT max(id) + 1000 FROM messages"))
        await conn.execute(
            text("INSERT INTO reply_chunks (message_id, start_offset, text) VALUES (:id, 0, 'x')"),
            {"id": gone},
        )
    assert await _chunk_titles(engine) == ["(none)", "ended", "ended", "live", "live"]

    async with engine.connect() as holder:  # the live reply's process
        await holder.execute(
            text("SELECT pg_advisory_lock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": LIVE_KEY}
        )
        swept = await ReplyStore(unit_of_work_factory(engine)).fail_orphans("gone")
        await holder.execute(
            text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": LIVE_KEY}
        )
    assert swept == []
    assert await _chunk_titles(engine) == ["live", "live"]
