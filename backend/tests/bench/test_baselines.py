"""The benchmark baselines must keep answering exactly like the app, or their ratios mean nothing.

No load and no timing here (that is `make bench`): only that the raw-asyncpg floor and the
FastAPI ceiling produce the app's answers (status, content type, bytes) for the same seeded data,
on every route `bench core` measures, 404s and empty pages included.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.settings import Settings
from bench import discover, thread
from bench.baselines import fastapi_ceiling, sessions_raw
from bench.core import (
    MESSAGE_FIELDS,
    MESSAGES_LIMIT,
    MESSAGES_PER_SESSION,
    PATH,
    POST_BODY,
    SESSIONS,
    seed,
)
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


@asynccontextmanager
async def baselines(
    database: BenchDatabase, user_id: int, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Both baselines, started as `bench core` starts them, behind in-process clients."""
    monkeypatch.setenv("BENCH_PG_CONNECT", json.dumps(database.connect_kwargs()))
    monkeypatch.setenv("BENCH_USER_ID", str(user_id))
    monkeypatch.setenv("BENCH_POOL_SIZE", "2")
    monkeypatch.setenv("BENCH_AUTH_SECRET", settings.auth_secret)
    monkeypatch.setenv("BENCH_AUTH_ISSUER", settings.auth_issuer)
    monkeypatch.setenv("BENCH_AUTH_AUDIENCE", settings.auth_audience)
    raw = sessions_raw.create_app()
    ceiling: FastAPI = fastapi_ceiling.create_app()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(lifespan(raw))
        await stack.enter_async_context(ceiling.router.lifespan_context(ceiling))
        clients = {}
        for name, app in (("raw", raw), ("fastapi", ceiling)):
            transport = httpx.ASGITransport(app=app)
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://b")
            )
        yield clients


@pytest.fixture
async def seeded(migrated_url: str) -> AsyncIterator[tuple[BenchDatabase, str, dict[str, int]]]:
    """The bench's seed (50 sessions x 20 messages), plus an empty session of the same user and
    a session of somebody else; every row is deleted afterwards."""
    database = BenchDatabase(url=migrated_url, embedded=False)
    subject = f"bench-test-{uuid.uuid4().hex[:8]}"
    conn = await database.connect()
    users: list[int] = []
    try:
        users.append(await seed(conn, subject))
        other = await conn.fetchval(
            "INSERT INTO users (auth0_id) VALUES ($1) RETURNING id", f"{subject}-other"
        )
        users.append(other)
        ids = {
            "user": users[0],
            "probe": await conn.fetchval(
                "SELECT min(id) FROM sessions WHERE user_id = $1", users[0]
            ),
            "empty": await conn.fetchval(
                "INSERT INTO sessions (user_id, title) VALUES ($1, 'empty') RETURNING id", users[0]
            ),
            "foreign": await conn.fetchval(
                "INSERT INTO sessions (user_id, title) VALUES ($1, 'not yours') RETURNING id", other
            ),
        }
        ids["missing"] = ids["foreign"] + 1_000_000
        yield database, subject, ids
    finally:
        await conn.execute("DELETE FROM users WHERE id = ANY($1::bigint[])", users)
        await conn.close()


async def test_baselines_answer_reads_with_the_apps_bytes(
    client: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    seeded: tuple[BenchDatabase, str, dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database, subject, ids = seeded
    headers = auth(subject)
    paths = {
        "sessions": PATH,
        "session": f"/api/sessions/{ids['probe']}",
        "messages": f"/api/messages/?session_id={ids['probe']}&limit={MESSAGES_LIMIT}",
        "empty page": f"/api/messages/?session_id={ids['empty']}&limit={MESSAGES_LIMIT}",
        "missing session": f"/api/sessions/{ids['missing']}",
        "foreign session": f"/api/sessions/{ids['foreign']}",
        "missing session's messages": f"/api/messages/?session_id={ids['missing']}",
        "foreign session's messages": f"/api/messages/?session_id={ids['foreign']}",
    }
    expected = {name: await client.get(path, headers=headers) for name, path in paths.items()}
    async with baselines(database, ids["user"], settings, monkeypatch) as targets:
        got = {
            (target, name): await baseline.get(path, headers=headers)
            for target, baseline in targets.items()
            for name, path in paths.items()
        }

    sessions = expected["sessions"].json()
    # The empty session is the newest; the page of 50 ends before the oldest seeded one.
    assert len(sessions) == SESSIONS
    assert sessions[0]["id"] == ids["empty"]
    assert {s["message_count"] for s in sessions} == {MESSAGES_PER_SESSION, 0}
    assert len(expected["messages"].json()) == MESSAGES_LIMIT
    assert expected["empty page"].json() == []
    for name in paths:
        if "missing" in name or "foreign" in name:
            assert expected[name].status_code == 404, name
    for (target, name), response in got.items():
        want = expected[name]
        assert response.status_code == want.status_code, (target, name, response.text)
        assert response.headers["content-type"] == want.headers["content-type"], (target, name)
        if want.status_code == 200:
            assert response.content == want.content, (target, name)
        else:  # the app's problem documents also carry the request's id
            problem = {k: v for k, v in want.json().items() if k != "request_id"}
            assert response.json() == problem, (target, name)


async def test_baselines_create_messages_as_the_app_does(
    client: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
    seeded: tuple[BenchDatabase, str, dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database, subject, ids = seeded
    headers = auth(subject)
    post = f"/api/messages/?session_id={ids['probe']}"
    session = f"/api/sessions/{ids['probe']}"
    created = {"app": await client.post(post, json=POST_BODY, headers=headers)}
    sessions = {"app": (await client.get(session, headers=headers)).json()}
    refused = {
        "app": await client.post(
            f"/api/messages/?session_id={ids['foreign']}", json=POST_BODY, headers=headers
        )
    }
    async with baselines(database, ids["user"], settings, monkeypatch) as targets:
        for target, baseline in targets.items():
            created[target] = await baseline.post(post, json=POST_BODY, headers=headers)
            sessions[target] = (await baseline.get(session, headers=headers)).json()
            refused[target] = await baseline.post(
                f"/api/messages/?session_id={ids['foreign']}", json=POST_BODY, headers=headers
            )

    count = MESSAGES_PER_SESSION
    ids_seen = set()
    previous: int | None = None
    for target in ("app", "raw", "fastapi"):
        response = created[target]
        assert response.status_code == 201, (target, response.text)
        assert response.headers["content-type"] == "application/json"
        message = response.json()
        assert tuple(message) == MESSAGE_FIELDS, target
        ignored = {"id", "created_at", "parent_id"}
        assert {k: v for k, v in message.items() if k not in ignored} == {
            "session_id": ids["probe"],
            **POST_BODY,
            "status": "completed",
            "input_tokens": 0,
            "error": None,
            "tool_calls": None,
            "tool_call_id": None,
            "finish_reason": None,
            "model": None,
            "feedback": None,
        }, target
        # Each goes under the one before it (the seed's messages hang from no current one).
        assert message["parent_id"] == previous, target
        previous = message["id"]
        ids_seen.add(message["id"])
        # The same transaction counted it, moved the session to the message's time and made it
        # the current message.
        count += 1
        assert sessions[target]["message_count"] == count, target
        assert sessions[target]["updated_at"] == message["created_at"], target
        assert sessions[target]["current_message_id"] == message["id"], target
        assert refused[target].status_code == 404, target
        assert {k: v for k, v in refused[target].json().items() if k != "request_id"} == {
            k: v for k, v in refused["app"].json().items() if k != "request_id"
        }, target
        assert refused[target].headers["content-type"] == "application/problem+json", target
    assert len(ids_seen) == 3


async def test_the_ceiling_checks_tokens_like_the_app(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: tuple[BenchDatabase, str, dict[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database, subject, ids = seeded
    from app.core.security import LocalTokens

    foreign = Settings(_env_file=None, auth_secret=settings.auth_secret, auth_audience="other")
    bad_tokens = {
        "no header": {},
        "not bearer": {"Authorization": "Basic abc"},
        "wrong audience": {"Authorization": f"Bearer {LocalTokens(foreign).mint(subject)}"},
        "expired": {"Authorization": f"Bearer {LocalTokens(settings).mint(subject, ttl_s=-3600)}"},
    }
    async with baselines(database, ids["user"], settings, monkeypatch) as targets:
        for name, headers in bad_tokens.items():
            response = await targets["fastapi"].get(PATH, headers=headers)
            assert response.status_code == 401, name
            assert response.headers["content-type"] == "application/problem+json", name
            assert (await client.get(PATH, headers=headers)).status_code == 401, name


def test_every_benchmark_module_is_discovered_with_its_entry_point() -> None:
    benchmarks = discover()
    assert {"core", "wal", "replies", "thread"} <= set(benchmarks)
    assert all(b.description and callable(b.run) for b in benchmarks.values())


async def test_the_thread_benchmark_compares_like_with_like(migrated_url: str) -> None:
    """Its two statements read the same number of messages, the thread's being one branch from
    the root with its siblings (the checks `make bench` runs before timing anything)."""
    subject = f"bench-test-{uuid.uuid4().hex[:8]}"
    conn = await BenchDatabase(url=migrated_url, embedded=False).connect()
    try:
        targets = thread.targets_for(await thread.seed(conn, subject))
        await thread.check(conn, targets)
        rows = await thread.fetch(conn, *targets["thread"])
        current = await conn.fetchval(
            "SELECT s.current_message_id FROM sessions AS s JOIN users AS u "
            "ON u.id = s.user_id WHERE u.auth0_id = $1",
            subject,
        )
        assert len(rows) == thread.BRANCH
        assert rows[-1]["id"] == current
    finally:
        await conn.execute("DELETE FROM users WHERE auth0_id = $1", subject)
        await conn.close()
