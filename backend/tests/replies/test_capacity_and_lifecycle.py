"""Connections, start-up recovery and shutdown, against a real uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.services.replies import SHUTDOWN_ERROR
from app.persistence.repositories.replies import LOCK_NAMESPACE
from app.replies.liveness import ORPHAN_ERROR
from tests.replies.conftest import Serve
from tests.support.replies import expected_reply, new_session, reply_stream
from tests.support.sse import collect, events, text_of

Auth = Callable[[str], dict[str, str]]


async def test_200_concurrent_replies_complete_with_a_pool_of_5(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    """Each reply streams for 2 s. Were a connection held while the model streams, 200 replies
    on 5 connections would need 80 s of connection time and most would fail after the 5 s
    pool timeout (503). All complete, and mid-stream the pool is (almost) idle."""
    server = await serve(
        db_pool_size=5, db_max_overflow=0, simulated_tokens=20, simulated_delay_ms=100
    )
    pool = server.app.state.services.engine.pool
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    streaming = 0
    all_streaming = asyncio.Event()
    async with engine.begin() as conn:  # 20 users with 10 sessions each, seeded directly
        rows = await conn.execute(
            text(
                "WITH u AS (INSERT INTO users (auth0_id) SELECT 'user' || g "
                "FROM generate_series(0, 19) AS g RETURNING id, auth0_id) "
                "INSERT INTO sessions (user_id, title) SELECT u.id, u.auth0_id FROM u, "
                "generate_series(1, 10) RETURNING id, title"
            )
        )
        sessions = [(auth(row.title), row.id) for row in rows]
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:

        async def one(i: int) -> tuple[str, str]:
            nonlocal streaming
            headers, sid = sessions[i]
            async with reply_stream(http, sid, f"q{i}", headers) as response:
                received = []
                async for event in events(response):
                    received.append(event)
                    if event.event == "delta" and sum(e.event == "delta" for e in received) == 1:
                        streaming += 1
                        if streaming == 200:
                            all_streaming.set()
            assert received[-1].data["status"] == "completed"
            return text_of(received), received[-1].data["content"]

        replies = asyncio.gather(*(one(i) for i in range(200)))
        await asyncio.wait_for(all_streaming.wait(), 30)
        # 200 replies streaming; at most the progress writer holds a connection right now.
        assert pool.checkedout() <= 1
        results = await replies
    for i, (streamed, saved) in enumerate(results):
        assert streamed == saved == expected_reply(f"q{i}", 20)


async def seed_streaming_reply(engine: AsyncEngine, subject: str, worker_key: int) -> int:
    async with engine.begin() as conn:
        user_id = await conn.scalar(
            text("INSERT INTO users (auth0_id) VALUES (:s) RETURNING id"), {"s": subject}
        )
        sid = await conn.scalar(
            text("INSERT INTO sessions (user_id, title) VALUES (:u, 't') RETURNING id"),
            {"u": user_id},
        )
        message_id: int = await conn.scalar(
            text(
                "INSERT INTO messages (session_id, user_id, role, content, status, worker_key) "
                "VALUES (:sid, :u, 'assistant', 'half a', 'streaming', :key) RETURNING id"
            ),
            {"sid": sid, "u": user_id, "key": worker_key},
        )
    return message_id


async def status_of(engine: AsyncEngine, message_id: int) -> tuple[str, str, str | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, content, error FROM messages WHERE id = :id"),
                {"id": message_id},
            )
        ).one()
    return row.status, row.content, row.error


async def finish_of(engine: AsyncEngine, message_id: int) -> tuple[str | None, str | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT finish_reason, model FROM messages WHERE id = :id"), {"id": message_id}
            )
        ).one()
    return row.finish_reason, row.model


async def test_start_up_fails_replies_of_dead_processes_only(
    serve: Serve, engine: AsyncEngine
) -> None:
    orphan = await seed_streaming_reply(engine, "alice", worker_key=1111)
    alive = await seed_streaming_reply(engine, "bob", worker_key=2222)
    async with engine.connect() as holder:  # stands in for a live process holding key 2222
        await holder.execute(text("SELECT pg_advisory_lock(:ns, 2222)"), {"ns": LOCK_NAMESPACE})
        server = await serve()
        assert await status_of(engine, orphan) == ("failed", "half a", ORPHAN_ERROR)
        assert (await status_of(engine, alive))[0] == "streaming"
        await holder.execute(text("SELECT pg_advisory_unlock(:ns, 2222)"), {"ns": LOCK_NAMESPACE})
    # Once its process is gone, the periodic sweep fails it too.
    assert await server.app.state.reply_runtime.liveness.sweep() == [alive]
    assert await status_of(engine, alive) == ("failed", "half a", ORPHAN_ERROR)
    assert await finish_of(engine, alive) == ("error", None)
    async with engine.connect() as conn:  # each failed reply counts once in the usage ledger
        recorded = await conn.execute(text("SELECT message_id FROM reply_usage ORDER BY 1"))
        assert [row.message_id for row in recorded] == sorted([orphan, alive])


async def test_shutdown_marks_unfinished_replies_failed(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    server = await serve(simulated_delay_ms=20, simulated_tokens=1000, reply_shutdown_grace_s=0)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "long", alice) as response:
            received = await collect(response, limit=4)
    await server.shutdown()
    status, content, error = await status_of(engine, received[1].data["id"])
    assert (status, error) == ("failed", SHUTDOWN_ERROR)
    assert await finish_of(engine, received[1].data["id"]) == ("error", "simulated")
    assert content.startswith(text_of(received))
    assert expected_reply("long", 1000).startswith(content)


async def test_shutdown_lets_replies_finish_within_the_grace_period(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    server = await serve(simulated_delay_ms=10, simulated_tokens=40, reply_shutdown_grace_s=30)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "short", alice) as response:
            stream = events(response)
            await anext(stream)
            reply_id = (await anext(stream)).data["id"]
    await server.shutdown()
    assert await status_of(engine, reply_id) == (
        "completed",
        expected_reply("short", 40),
        None,
    )


async def test_without_a_database_replies_answer_503_and_the_server_still_starts(
    serve: Serve, auth: Auth
) -> None:
    server = await serve(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:9/nowhere", db_connect_timeout_s=0.5
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        replied = await http.post(
            "/api/sessions/1/replies", json={"content": "hello?"}, headers=auth("alice")
        )
        streamed = await http.get("/api/messages/1/stream", headers=auth("alice"))
    assert replied.status_code == streamed.status_code == 503
    assert replied.headers["content-type"] == "application/problem+json"
    assert replied.headers["retry-after"]
