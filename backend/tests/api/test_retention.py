"""The retention sweep: exactly the due sessions go (idle ones, expired ones), with their
messages, in batches, one process at a time, while the API keeps answering."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import ConnectParams
from app.core.settings import Settings
from app.persistence.retention import RETENTION_LOCK, RetentionPolicy, RetentionSweeper

Auth = Callable[[str], dict[str, str]]
LOCK = {"a": RETENTION_LOCK[0], "b": RETENTION_LOCK[1]}


def _sweeper(
    settings: Settings,
    retention_days: int | None,
    batch_size: int = 200,
    pause_s: float = 0.05,
) -> RetentionSweeper:
    assert settings.database_url is not None
    policy = RetentionPolicy(retention_days=retention_days, batch_size=batch_size, pause_s=pause_s)
    return RetentionSweeper(ConnectParams.from_url(settings.database_url), policy)


async def _session(
    client: httpx.AsyncClient, auth: Auth, who: str, title: str, messages: int = 2
) -> int:
    response = await client.post("/api/sessions/", json={"title": title}, headers=auth(who))
    sid: int = response.json()["id"]
    for n in range(messages):
        await client.post(
            f"/api/messages/?session_id={sid}",
            json={"role": "user", "content": f"m{n}"},
            headers=auth(who),
        )
    return sid


async def _age(engine: AsyncEngine, sql: str, ids: list[int]) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql + " WHERE id = ANY(:ids)"), {"ids": ids})


async def _titles(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.scalars(text("SELECT title FROM sessions"))).all())


async def test_the_sweep_deletes_exactly_idle_and_expired_sessions(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, auth: Auth
) -> None:
    ids = {
        title: await _session(client, auth, who, title)
        for who, title in [
            ("alice", "fresh"),
            ("alice", "idle 1"),
            ("alice", "idle 2"),
            ("alice", "idle 3"),
            ("alice", "almost idle"),
            ("alice", "expired"),
            ("alice", "expires later"),
            ("bob", "bob idle"),
            ("bob", "bob fresh"),
        ]
    }
    idle = [ids[t] for t in ("idle 1", "idle 2", "idle 3", "bob idle")]
    await _age(engine, "UPDATE sessions SET updated_at = now() - interval '31 days'", idle)
    await _age(
        engine, "UPDATE sessions SET updated_at = now() - interval '29 days'", [ids["almost idle"]]
    )
    await _age(
        engine, "UPDATE sessions SET expires_at = now() - interval '1 second'", [ids["expired"]]
    )
    await _age(
        engine, "UPDATE sessions SET expires_at = now() + interval '1 hour'", [ids["expires later"]]
    )

    report = await _sweeper(settings, retention_days=30, batch_size=3, pause_s=0).sweep()

    assert report is not None
    assert report.expired == [1]
    assert report.idle == [3, 1]  # in batches of at most 3
    assert await _titles(engine) == {"fresh", "almost idle", "expires later", "bob fresh"}
    async with engine.connect() as conn:
        orphans = await conn.scalar(
            text("SELECT count(*) FROM messages WHERE session_id = ANY(:ids)"),
            {"ids": [*idle, ids["expired"]]},
        )
        counters = (
            await conn.execute(
                text(
                    "SELECT u.auth0_id, u.session_count, count(s.id) FROM users AS u "
                    "LEFT JOIN sessions AS s ON s.user_id = u.id GROUP BY u.id ORDER BY 1"
                )
            )
        ).all()
    assert orphans == 0
    assert [tuple(row) for row in counters] == [("alice", 3, 3), ("bob", 1, 1)]
    me = await client.get("/api/users/me", headers=auth("alice"))
    assert me.json()["session_count"] == 3


async def test_without_retention_days_only_expired_sessions_go(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, auth: Auth
) -> None:
    old = await _session(client, auth, "alice", "old")
    gone = await _session(client, auth, "alice", "gone")
    await _age(engine, "UPDATE sessions SET updated_at = now() - interval '10 years'", [old])
    await _age(engine, "UPDATE sessions SET expires_at = now() - interval '1 second'", [gone])
    report = await _sweeper(settings, retention_days=None).sweep()
    assert report is not None
    assert (report.expired, report.idle) == ([1], [])
    assert await _titles(engine) == {"old"}


async def test_one_sweeper_at_a_time(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, auth: Auth
) -> None:
    sid = await _session(client, auth, "alice", "idle", messages=0)
    await _age(engine, "UPDATE sessions SET updated_at = now() - interval '31 days'", [sid])
    async with engine.connect() as holder:
        # Another process's sweep holds the lock: this one skips its turn, deleting nothing.
        await holder.execute(text("SELECT pg_advisory_lock(:a, :b)"), LOCK)
        assert await _sweeper(settings, retention_days=30).sweep() is None
        assert await _titles(engine) == {"idle"}
        await holder.execute(text("SELECT pg_advisory_unlock(:a, :b)"), LOCK)
        await holder.commit()

    # Two sweepers started together: one works, the other finds the lock taken.
    await _seed_idle(engine, 50)
    first, second = (_sweeper(settings, 30, batch_size=5, pause_s=0.05) for _ in "ab")
    reports = await asyncio.gather(first.sweep(), second.sweep())
    assert sorted(r is None for r in reports) == [False, True]
    done = next(r for r in reports if r is not None)
    assert sum(done.idle) == 51
    assert await _titles(engine) == set()


async def _seed_idle(engine: AsyncEngine, sessions: int, messages: int = 0) -> None:
    """`sessions` idle sessions of one user (with `messages` messages each), by SQL."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "WITH u AS (INSERT INTO users (auth0_id, session_count) VALUES ('idler', :n) "
                "RETURNING id), s AS (INSERT INTO sessions (user_id, title, updated_at, "
                "message_count) SELECT u.id, 'idle ' || g, now() - interval '400 days', :m "
                "FROM u, generate_series(1, :n) AS g RETURNING id, user_id) "
                "INSERT INTO messages (session_id, user_id, role, content) "
                "SELECT s.id, s.user_id, 'user', 'old words' FROM s, generate_series(1, :m)"
            ),
            {"n": sessions, "m": messages},
        )


async def test_the_api_keeps_answering_during_a_sweep_of_20000_sessions(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, auth: Auth
) -> None:
    """Latency of a simple GET before and during a sweep (figures printed; `-s` shows them).
    Only a generous bound is asserted: speed belongs in benchmarks."""
    alice = auth("alice")
    sid = await _session(client, auth, "alice", "active")
    await _seed_idle(engine, 20_000, messages=2)
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE sessions, messages, users"))

    async def timed_get() -> float:
        began = time.perf_counter()
        response = await client.get(f"/api/sessions/{sid}", headers=alice)
        assert response.status_code == 200
        return time.perf_counter() - began

    before = [await timed_get() for _ in range(100)]
    sweep = asyncio.create_task(_sweeper(settings, retention_days=30).sweep())
    during: list[float] = []
    while not sweep.done():
        during.append(await timed_get())
        await asyncio.sleep(0.005)
    report = await sweep
    assert report is not None
    assert sum(report.idle) == 20_000
    assert max(report.idle) <= RetentionPolicy().batch_size
    assert await _titles(engine) == {"active"}
    print(
        "\nGET /api/sessions/{id} before the sweep: median "
        f"{statistics.median(before) * 1000:.1f} ms, max {max(before) * 1000:.1f} ms "
        f"({len(before)} requests); during the sweep of "
        f"20,000 sessions ({len(report.idle)} batches): median "
        f"{statistics.median(during) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms "
        f"({len(during)} requests)"
    )
    assert len(during) >= 10
    assert max(during) < 5.0


async def test_the_sweep_never_waits_for_an_owner_being_written(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, auth: Auth
) -> None:
    """An owner's row held by another transaction (an account being erased takes it, then
    waits for its sessions' rows): the sweep skips that owner's sessions this time instead of
    waiting, so the two cannot deadlock; the next sweep takes them."""
    alices = await _session(client, auth, "alice", "alice idle", messages=1)
    bobs = await _session(client, auth, "bob", "bob idle", messages=1)
    old = "UPDATE sessions SET updated_at = now() - interval '31 days'"
    await _age(engine, old, [alices, bobs])
    async with engine.connect() as holder:
        await holder.execute(
            text("SELECT id FROM users WHERE auth0_id = 'alice' FOR NO KEY UPDATE")
        )
        report = await asyncio.wait_for(_sweeper(settings, 30).sweep(), timeout=10)
        assert report is not None
        assert report.idle == [1]
        assert await _titles(engine) == {"alice idle"}
        await holder.rollback()
    report = await _sweeper(settings, 30).sweep()
    assert report is not None
    assert report.idle == [1]
    assert await _titles(engine) == set()
