"""The reply runtime's own guarantees, each through one mechanism at a time: cancellation by
the flag alone and by the NOTIFY alone, and a reply whose text the database refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.reply_runtime import ReplyOutcome
from app.domain.services.replies import UNSTORABLE_ERROR
from app.persistence.channels import REPLY_CANCEL
from app.persistence.unit_of_work import unit_of_work_factory
from app.replies.live import RunningReply
from app.replies.store import ReplyStore
from app.replies.writer import ProgressWriter
from tests.replies.conftest import Serve
from tests.support.replies import new_session, reply_stream, wait_until_ended
from tests.support.sse import events

Auth = Callable[[str], dict[str, str]]

#: The issue's bound for a cancel to take effect through one mechanism alone.
CANCEL_BOUND_S = 3.0


async def _start_long_reply(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    sid = await new_session(http, headers)
    async with reply_stream(http, sid, "long", headers) as response:
        stream = events(response)
        await anext(stream)  # user
        reply_id: int = (await anext(stream)).data["id"]
        await anext(stream)  # the first delta: generation is under way
    return reply_id


async def _length_now(engine: AsyncEngine, reply_id: int) -> tuple[str, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT status, char_length(content) + coalesce((SELECT sum(char_length(text))"
                    " FROM reply_chunks WHERE message_id = :id), 0) AS length "
                    "FROM messages WHERE id = :id"
                ),
                {"id": reply_id},
            )
        ).one()
    return row.status, row.length


async def _assert_cancelled_and_stopped(
    http: httpx.AsyncClient, engine: AsyncEngine, reply_id: int, headers: dict[str, str]
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    ended = await wait_until_ended(http, reply_id, headers, timeout_s=CANCEL_BOUND_S + 2)
    assert loop.time() - started <= CANCEL_BOUND_S
    assert ended["status"] == "cancelled"
    # Generation stopped: the text does not grow any more (the model would go on for 20 s).
    before = await _length_now(engine, reply_id)
    await asyncio.sleep(0.3)
    assert await _length_now(engine, reply_id) == before
    assert 0 < len(ended["content"]) < 1000 * len(" word")


async def test_a_cancel_flag_alone_stops_the_reply(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    """No NOTIFY: the progress writer reads the flag back with its next round."""
    server = await serve(simulated_tokens=1000, simulated_delay_ms=20, reply_flush_ms=500)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        reply_id = await _start_long_reply(http, alice)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE messages SET cancel_requested = true WHERE id = :id"),
                {"id": reply_id},
            )
        await _assert_cancelled_and_stopped(http, engine, reply_id, alice)


async def test_a_cancel_notify_alone_stops_the_reply(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    """No flag, and no progress round before the bound: the NOTIFY alone does it."""
    server = await serve(simulated_tokens=1000, simulated_delay_ms=20, reply_flush_ms=10_000)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        reply_id = await _start_long_reply(http, alice)
        async with engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_notify(:channel, :id)"),
                {"channel": REPLY_CANCEL, "id": str(reply_id)},
            )
        await _assert_cancelled_and_stopped(http, engine, reply_id, alice)


async def _streaming_rows(engine: AsyncEngine, count: int) -> list[int]:
    async with engine.begin() as conn:
        rows = await conn.execute(
            text(
                "WITH u AS (INSERT INTO users (auth0_id) VALUES ('writer') RETURNING id), "
                "s AS (INSERT INTO sessions (user_id, title) SELECT u.id, 's' || g "
                "FROM u, generate_series(1, :n) AS g RETURNING id, user_id) "
                "INSERT INTO messages (session_id, user_id, role, content, status) "
                "SELECT id, user_id, 'assistant', '', 'streaming' FROM s RETURNING id"
            ),
            {"n": count},
        )
        return sorted(row.id for row in rows)


async def test_one_replys_refused_text_never_stalls_the_others(engine: AsyncEngine) -> None:
    """A lone surrogate cannot be encoded for PostgreSQL. The batch holding it is refused; the
    writer retries one by one, so the other replies are stored, and only the offender is stopped
    and then saved `failed` with the text that was stored before."""
    good, bad, also_good = await _streaming_rows(engine, 3)
    running: dict[int, RunningReply] = {}
    store = ReplyStore(unit_of_work_factory(engine))
    writer = ProgressWriter(store, running, flush_s=3600)
    for message_id in (good, bad, also_good):
        running[message_id] = RunningReply(message_id, writer.save_final)
        running[message_id].append("stored ")
    await writer.flush()
    assert all(reply.persisted == len("stored ") for reply in running.values())

    running[good].append("more")
    running[bad].append("bro\ud800ken")
    running[also_good].append("text")
    await writer.flush()
    assert running[good].persisted == len("stored more")
    assert running[also_good].persisted == len("stored text")
    assert running[bad].stop_reason == "unstorable"

    finals = asyncio.create_task(writer.run_finals())
    try:
        saved = await asyncio.wait_for(
            asyncio.gather(
                writer.save_final(good, ReplyOutcome("completed", "stored more", 2, 1)),
                writer.save_final(
                    bad,
                    ReplyOutcome("failed", "stored bro\ud800ken", 2, 1, UNSTORABLE_ERROR),
                ),
                writer.save_final(also_good, ReplyOutcome("completed", "stored text", 2, 1)),
            ),
            timeout=10,
        )
    finally:
        finals.cancel()
    by_id = {message.id: message for message in saved if message is not None}
    assert by_id[good].content == "stored more"
    assert by_id[also_good].content == "stored text"
    assert (by_id[bad].status, by_id[bad].content) == ("failed", "stored ")
    assert (by_id[bad].error, by_id[bad].finish_reason) == (UNSTORABLE_ERROR, "error")
    assert by_id[good].finish_reason == "stop"
    async with engine.connect() as conn:
        left = await conn.execute(text("SELECT count(*) FROM reply_chunks"))
        assert left.scalar() == 0  # folded into the messages


async def test_a_final_state_the_database_refuses_keeps_the_stored_text(
    engine: AsyncEngine,
) -> None:
    """Even a final text that slipped past the progress writer fails only its own reply."""
    first, second = await _streaming_rows(engine, 2)
    running: dict[int, RunningReply] = {}
    writer = ProgressWriter(ReplyStore(unit_of_work_factory(engine)), running, flush_s=3600)
    for message_id in (first, second):
        running[message_id] = RunningReply(message_id, writer.save_final)
        running[message_id].append("kept")
    await writer.flush()
    finals = asyncio.create_task(writer.run_finals())
    try:
        refused, fine = await asyncio.wait_for(
            asyncio.gather(
                writer.save_final(first, ReplyOutcome("completed", "kept\ud800", 1, 1)),
                writer.save_final(second, ReplyOutcome("completed", "kept all", 1, 1)),
            ),
            timeout=10,
        )
    finally:
        finals.cancel()
    assert refused is not None
    assert fine is not None
    assert (refused.status, refused.content, refused.error) == ("failed", "kept", UNSTORABLE_ERROR)
    assert refused.finish_reason == "error"
    assert (fine.status, fine.content) == ("completed", "kept all")


async def test_deleting_the_session_mid_reply_stops_it_and_leaves_nothing(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    server = await serve(simulated_tokens=1000, simulated_delay_ms=20, reply_flush_ms=50)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "long", alice) as response:
            stream = events(response)
            await anext(stream)  # user
            await anext(stream)  # message
            await anext(stream)  # a first delta
            assert (await http.delete(f"/api/sessions/{sid}", headers=alice)).status_code == 204
            last = [event async for event in stream][-1]
        assert last.event == "error"
        assert last.data["detail"] == "the message was deleted"
    runtime = server.app.state.reply_runtime
    for _ in range(100):  # the generating task notices at its next progress round
        if runtime.active == 0:
            break
        await asyncio.sleep(0.05)
    assert runtime.active == 0
    # An append racing the delete may have stored one chunk after it (chunks have no foreign
    # key): the orphan sweep deletes it.
    await runtime.liveness.sweep()
    async with engine.connect() as conn:
        for table in ("messages", "reply_chunks"):
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0
