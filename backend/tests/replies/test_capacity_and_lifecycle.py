"""Connections, start-up recovery and shutdown, against a real uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.services.replies import SHUTDOWN_ERROR
from app.persistence.reply_hub import LOCK_NAMESPACE, ORPHAN_ERROR
from tests.replies.conftest import Serve
from tests.support.replies import expected_reply, new_session
from tests.support.sse import collect, events, text_of

Auth = Callable[[str], dict[str, str]]


async def test_200_concurrent_replies_complete_with_a_pool_of_5(serve: Serve, auth: Auth) -> None:
    """Each reply streams for ~0.5 s; 200 of them on 5 connections only work if no request
    holds a connection while the model streams (the pool would time out, answering 503)."""
    server = await serve(
        db_pool_size=5, db_max_overflow=0, simulated_tokens=20, simulated_delay_ms=25
    )
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        users = [auth(f"user{i}") for i in range(20)]
        sessions = [(users[i % 20], await new_session(http, users[i % 20])) for i in range(200)]

        async def one(i: int) -> tuple[str, str]:
            headers, sid = sessions[i]
            async with http.stream(
                "POST", f"/api/sessions/{sid}/replies", json={"content": f"q{i}"}, headers=headers
            ) as response:
                received = await collect(response)
            assert received[-1].data["status"] == "completed"
            return text_of(received), received[-1].data["content"]

        results = await asyncio.gather(*(one(i) for i in range(200)))
    assert server.app.state.engine.pool.size() == 5
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
                "INSERT INTO messages (session_id, role, content, status, worker_key) "
                "VALUES (:sid, 'assistant', 'half a', 'streaming', :key) RETURNING id"
            ),
            {"sid": sid, "key": worker_key},
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
    assert await server.app.state.reply_hub.sweep() == [alive]
    assert await status_of(engine, alive) == ("failed", "half a", ORPHAN_ERROR)


async def test_shutdown_marks_unfinished_replies_failed(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    server = await serve(simulated_delay_ms=20, simulated_tokens=1000, reply_shutdown_grace_s=0)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with http.stream(
            "POST", f"/api/sessions/{sid}/replies", json={"content": "long"}, headers=alice
        ) as response:
            received = await collect(response, limit=4)
    await server.shutdown()
    status, content, error = await status_of(engine, received[1].data["id"])
    assert (status, error) == ("failed", SHUTDOWN_ERROR)
    assert content.startswith(text_of(received))
    assert expected_reply("long", 1000).startswith(content)


async def test_shutdown_lets_replies_finish_within_the_grace_period(
    serve: Serve, auth: Auth, engine: AsyncEngine
) -> None:
    server = await serve(simulated_delay_ms=10, simulated_tokens=40, reply_shutdown_grace_s=30)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with http.stream(
            "POST", f"/api/sessions/{sid}/replies", json={"content": "short"}, headers=alice
        ) as response:
            stream = events(response)
            await anext(stream)
            reply_id = (await anext(stream)).data["id"]
    await server.shutdown()
    assert await status_of(engine, reply_id) == (
        "completed",
        expected_reply("short", 40),
        None,
    )
