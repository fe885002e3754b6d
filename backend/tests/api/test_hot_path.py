"""The hot path, pinned by structural facts: round trips to PostgreSQL per request, the unit of
work's transaction rule, a dropped connection, and the caller cache across processes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_engine
from app.core.settings import Settings
from app.domain.dtos import Principal
from app.main import create_app
from app.persistence.repositories.base import Sql
from app.persistence.unit_of_work import (
    SqlUnitOfWork,
    TransactionRuleBroken,
    unit_of_work_factory,
)
from bench.support.roundtrips import RoundTrips

Auth = Callable[[str], dict[str, str]]
BACKEND_PID = Sql("SELECT pg_backend_pid() AS pid")


async def _seeded(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, int]:
    session = (await client.post("/api/sessions/", json={"title": "t"}, headers=headers)).json()
    url = f"/api/messages/?session_id={session['id']}"
    message = await client.post(url, json={"role": "user", "content": "hi"}, headers=headers)
    return session["id"], message.json()["id"]


async def test_warm_requests_cost_one_round_trip_each(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    session_id, message_id = await _seeded(client, alice)
    requests = [
        ("GET", "/api/sessions/?limit=50", None),
        ("GET", f"/api/sessions/{session_id}", None),
        ("GET", f"/api/messages/?session_id={session_id}&limit=20", None),
        ("GET", f"/api/messages/{message_id}", None),
        ("POST", f"/api/messages/?session_id={session_id}", {"role": "user", "content": "x"}),
        ("PATCH", f"/api/sessions/{session_id}", {"title": "renamed"}),
        ("PATCH", f"/api/sessions/{session_id}", {"current_message_id": message_id}),
        ("PATCH", f"/api/sessions/{session_id}", {"metadata": {"a": "b"}, "pinned": True}),
        ("GET", "/api/sessions/?metadata=a:b&metadata=c:d&archived=true", None),
        ("GET", f"/api/sessions/{session_id}/thread", None),
        ("GET", "/api/users/me", None),
        ("GET", "/api/search?q=hi", None),
        ("GET", "/api/users/me/usage?group_by=model", None),
        ("PATCH", f"/api/sessions/{session_id}", {"expires_at": "2999-01-01T00:00:00Z"}),
    ]
    for method, url, body in requests:
        await client.request(method, url, json=body, headers=alice)  # warm: statements prepared
        with RoundTrips().installed() as trips:
            response = await client.request(method, url, json=body, headers=alice)
        assert response.status_code in {200, 201}, response.text
        assert trips.counts == Counter(statements=1), (method, url, trips.counts)


async def test_a_new_caller_costs_a_lookup_once(client: httpx.AsyncClient, auth: Auth) -> None:
    bob = auth("bob")
    await client.get("/api/sessions/", headers=bob)  # provisions bob
    with RoundTrips().installed() as trips:
        await client.get("/api/sessions/", headers=bob)
    assert trips.counts["statements"] == 1
    assert trips.counts["simple"] == 0  # no BEGIN / COMMIT / ROLLBACK


def _uow(engine: AsyncEngine) -> AbstractAsyncContextManager[SqlUnitOfWork]:
    return unit_of_work_factory(engine)()


async def _titles(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT title FROM sessions ORDER BY id"))).scalars())


async def _user(engine: AsyncEngine, subject: str) -> int:
    async with engine.begin() as conn:
        user_id: int = (
            await conn.execute(
                text("INSERT INTO users (auth0_id) VALUES (:s) RETURNING id"), {"s": subject}
            )
        ).scalar_one()
        return user_id


async def test_a_second_write_outside_atomic_is_refused(engine: AsyncEngine) -> None:
    user_id = await _user(engine, "rule")
    async with _uow(engine) as uow:
        await uow.sessions.add(user_id, "one", 10)
        with pytest.raises(TransactionRuleBroken):
            await uow.sessions.add(user_id, "two", 10)
    assert await _titles(engine) == ["one"]


async def test_atomic_commits_together_or_not_at_all(engine: AsyncEngine) -> None:
    user_id = await _user(engine, "atomic")

    async def two_writes_then_a_failure(uow: SqlUnitOfWork) -> None:
        async with uow.atomic():
            await uow.sessions.add(user_id, "a", 10)
            async with uow.atomic():  # joins the outer block
                await uow.sessions.add(user_id, "b", 10)
            raise RuntimeError("boom")

    async with _uow(engine) as uow:
        with pytest.raises(RuntimeError, match="boom"):
            await two_writes_then_a_failure(uow)
        assert await _titles(engine) == []
        async with uow.atomic():
            await uow.sessions.add(user_id, "a", 10)
            await uow.sessions.add(user_id, "b", 10)
            assert await _titles(engine) == []  # not visible before the commit
        assert await _titles(engine) == ["a", "b"]
        assert await uow.sessions.session_count(user_id) == 2


async def test_a_read_survives_a_dropped_connection(settings: Settings) -> None:
    """The server ends our pooled connection (a restart, a failover): the next read notices,
    takes a new connection and answers; no pre-ping was spent on the way."""
    engine = create_engine(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    try:
        user_id = await _user(engine, "dropped")
        async with _uow(engine) as uow:
            pid = (await uow.read(BACKEND_PID))[0]["pid"]
        killer = create_engine(settings)
        async with killer.begin() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await killer.dispose()
        async with _uow(engine) as uow:
            assert await uow.sessions.session_count(user_id) == 0
            new_pid = (await uow.read(BACKEND_PID))[0]["pid"]
        assert new_pid != pid
    finally:
        await engine.dispose()


async def test_an_account_erased_in_another_process_is_forgotten_here(
    settings: Settings, engine: AsyncEngine, app: FastAPI, auth: Auth
) -> None:
    """Two apps on one database, each with its own caller cache: B erases alice, A forgets her
    (NOTIFY) and the next request through A provisions a new, empty account."""
    other = create_app(settings, engine=create_engine(settings))
    alice = auth("alice")
    transport_a = httpx.ASGITransport(app=app)
    transport_b = httpx.ASGITransport(app=other)
    async with (
        other.router.lifespan_context(other),
        httpx.AsyncClient(transport=transport_a, base_url="http://a") as a,
        httpx.AsyncClient(transport=transport_b, base_url="http://b") as b,
    ):
        first = (await a.get("/api/users/me", headers=alice)).json()["id"]
        assert (await a.post("/api/sessions/", json={"title": "x"}, headers=alice)).is_success
        assert (await b.delete("/api/users/me", headers=alice)).status_code == 204
        known = app.state.services.known_users
        for _ in range(200):
            if known.get(Principal("alice")) is None:
                break
            await asyncio.sleep(0.01)
        assert known.get(Principal("alice")) is None
        me = (await a.get("/api/users/me", headers=alice)).json()
        assert me["id"] != first
        assert me["session_count"] == 0


async def test_a_stale_cached_id_answers_404_then_recovers(
    app: FastAPI, engine: AsyncEngine, client: httpx.AsyncClient, auth: Auth
) -> None:
    """Even if the notification were lost: a write with an erased id is refused (never stored
    under another account), answers 404, and the id is forgotten."""
    alice = auth("alice")
    first = (await client.get("/api/users/me", headers=alice)).json()["id"]
    async with engine.begin() as conn:  # erased behind the app's back: no NOTIFY
        await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": first})
    stale = await client.post("/api/sessions/", json={"title": "x"}, headers=alice)
    assert stale.status_code == 404
    assert stale.json()["detail"] == "the account no longer exists"
    retried = await client.post("/api/sessions/", json={"title": "x"}, headers=alice)
    assert retried.status_code == 201
    assert retried.json()["user_id"] != first
