"""The benchmark floors must keep answering exactly like the app, or their ratios mean nothing.

No load and no timing here (that is `make bench`): only that the raw-asyncpg floor for the
session list produces the app's bytes for the same seeded data.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import discover, thread
from bench.baselines import sessions_raw
from bench.sessions import MESSAGES_PER_SESSION, PATH, SESSIONS, seed
from bench.support.database import BenchDatabase

Auth = Callable[[str], dict[str, str]]


@asynccontextmanager
async def lifespan(app: sessions_raw.ASGIApp) -> AsyncIterator[None]:
    """Run an ASGI app's start-up and shut-down, as uvicorn would (ASGITransport does not)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started, stopped = asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: Any) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()
        elif message["type"] == "lifespan.shutdown.complete":
            stopped.set()

    task: asyncio.Future[None] = asyncio.ensure_future(app({"type": "lifespan"}, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(stopped.wait(), 10)
        await task


async def test_raw_sessions_floor_answers_with_the_apps_bytes(
    client: httpx.AsyncClient, auth: Auth, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = BenchDatabase(url=migrated_url, embedded=False)
    subject = f"bench-test-{uuid.uuid4().hex[:8]}"
    conn = await database.connect()
    try:
        user_id = await seed(conn, subject)
        try:
            expected = await client.get(PATH, headers=auth(subject))
            assert expected.status_code == 200, expected.text
            monkeypatch.setenv("BENCH_PG_CONNECT", json.dumps(database.connect_kwargs()))
            monkeypatch.setenv("BENCH_USER_ID", str(user_id))
            monkeypatch.setenv("BENCH_POOL_SIZE", "2")
            floor = sessions_raw.create_app()
            async with lifespan(floor):
                transport = httpx.ASGITransport(app=floor)
                async with httpx.AsyncClient(transport=transport, base_url="http://b") as raw:
                    got = await raw.get(PATH)
        finally:
            await conn.execute("DELETE FROM users WHERE id = $1", user_id)
    finally:
        await conn.close()

    items = expected.json()
    assert len(items) == SESSIONS
    assert {item["message_count"] for item in items} == {MESSAGES_PER_SESSION}
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert got.content == expected.content


def test_every_benchmark_module_is_discovered_with_its_entry_point() -> None:
    benchmarks = discover()
    assert {"sessions", "thread"} <= set(benchmarks)
    assert all(b.description and callable(b.run) for b in benchmarks.values())


async def test_the_thread_benchmark_compares_like_with_like(engine: AsyncEngine) -> None:
    """Its two statements read the same number of messages, the thread's being one branch from
    the root with its siblings (the checks `make bench` runs before timing anything)."""
    subject = f"bench-test-{uuid.uuid4().hex[:8]}"
    try:
        async with engine.begin() as conn:
            targets = thread._targets(await thread._seed(conn, subject))
        async with engine.connect() as conn:
            await thread._check(conn, targets)
            rows = (await conn.execute(*targets["thread"])).all()
        assert len(rows) == thread.BRANCH
        assert rows[-1].id == await _current(engine, subject)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE auth0_id = :s"), {"s": subject})


async def _current(engine: AsyncEngine, subject: str) -> int:
    async with engine.connect() as conn:
        current: int = await conn.scalar(
            text(
                "SELECT s.current_message_id FROM sessions AS s JOIN users AS u "
                "ON u.id = s.user_id WHERE u.auth0_id = :s"
            ),
            {"s": subject},
        )
    return current
