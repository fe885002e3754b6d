"""`GET /api/users/me/usage`: the caller's replies' tokens by day, model or session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.persistence.repositories.usage import _REPORT

Auth = Callable[[str], dict[str, str]]

# Replies generated here carry a worker key; (session, model, input, output, time).
REPLIES = [
    (0, "gpt-a", 10, 100, "2026-03-01 10:00+00"),
    (0, "gpt-a", 20, 200, "2026-03-01 23:59+00"),
    (1, "gpt-b", 30, 300, "2026-03-02 00:00+00"),
    (1, None, 1, 2, "2026-03-05 12:00+00"),
]


async def _seed(client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth) -> list[int]:
    sessions = []
    for title in ("one", "two"):
        response = await client.post("/api/sessions/", json={"title": title}, headers=auth("alice"))
        sessions.append(response.json()["id"])
    bob = (await client.post("/api/sessions/", json={"title": "b"}, headers=auth("bob"))).json()
    async with engine.begin() as conn:
        for index, model, inputs, outputs, at in REPLIES:
            await conn.execute(
                text(
                    "INSERT INTO messages (session_id, user_id, role, content, model, "
                    "input_tokens, tokens, worker_key, created_at) "
                    "SELECT id, user_id, 'assistant', 'r', :model, :i, :o, 7, "
                    "CAST(CAST(:at AS text) AS timestamptz) FROM sessions WHERE id = :s"
                ),
                {"s": sessions[index], "model": model, "i": inputs, "o": outputs, "at": at},
            )
        # Not counted: a client's message with tokens, a fork's copy (no worker key), bob's.
        await conn.execute(
            text(
                "INSERT INTO messages (session_id, user_id, role, content, model, tokens, "
                "created_at) SELECT id, user_id, 'assistant', 'copy', 'gpt-a', 5000, "
                "'2026-03-01 11:00+00' FROM sessions WHERE id IN (:a, :b)"
            ),
            {"a": sessions[0], "b": bob["id"]},
        )
        await conn.execute(
            text(
                "INSERT INTO messages (session_id, user_id, role, content, model, tokens, "
                "worker_key, created_at) SELECT id, user_id, 'assistant', 'b', 'gpt-a', 9000, 7, "
                "'2026-03-01 11:00+00' FROM sessions WHERE id = :b"
            ),
            {"b": bob["id"]},
        )
    return sessions


async def _usage(client: httpx.AsyncClient, auth: Auth, **params: str) -> dict[str, Any]:
    response = await client.get("/api/users/me/usage", params=params, headers=auth("alice"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _groups(body: dict[str, Any]) -> list[tuple[str, int, int, int]]:
    return [(g["key"], g["input_tokens"], g["output_tokens"], g["replies"]) for g in body["groups"]]


async def test_usage_by_day_model_and_session(
    client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth
) -> None:
    sessions = await _seed(client, engine, auth)
    by_day = await _usage(client, auth, **{"from": "2026-03-01", "to": "2026-03-31"})
    assert _groups(by_day) == [
        ("2026-03-01", 30, 300, 2),
        ("2026-03-02", 30, 300, 1),
        ("2026-03-05", 1, 2, 1),
    ]
    assert by_day["total"] == {"input_tokens": 61, "output_tokens": 602, "replies": 4}
    assert by_day["group_by"] == "day"
    assert by_day["from"].startswith("2026-03-01T00:00:00")
    assert by_day["to"].startswith("2026-04-01T00:00:00")  # `to` as a date: the whole day

    by_model = await _usage(
        client, auth, **{"from": "2026-03-01", "to": "2026-03-02", "group_by": "model"}
    )
    assert _groups(by_model) == [("gpt-a", 30, 300, 2), ("gpt-b", 30, 300, 1)]
    by_session = await _usage(
        client,
        auth,
        **{"from": "2026-03-01T12:00:00Z", "to": "2026-03-05T12:00:00Z", "group_by": "session"},
    )
    # From noon on the 1st to (excluded) noon on the 5th.
    assert _groups(by_session) == sorted(
        [(str(sessions[0]), 20, 200, 1), (str(sessions[1]), 30, 300, 1)]
    )


async def test_expired_sessions_are_left_out(
    client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth
) -> None:
    sessions = await _seed(client, engine, auth)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = :s"),
            {"s": sessions[1]},
        )
    body = await _usage(client, auth, **{"from": "2026-03-01", "to": "2026-03-31"})
    assert body["total"] == {"input_tokens": 30, "output_tokens": 300, "replies": 2}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"from": "2026-03-01", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"group_by": "week"}, "group_by"),
    ],
)
async def test_bad_periods_are_422_naming_the_field(
    client: httpx.AsyncClient, auth: Auth, params: dict[str, str], field: str
) -> None:
    response = await client.get("/api/users/me/usage", params=params, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["query", field]


async def test_defaults_to_the_last_30_days(client: httpx.AsyncClient, auth: Auth) -> None:
    body = await _usage(client, auth)
    assert body["groups"] == []
    assert body["total"] == {"input_tokens": 0, "output_tokens": 0, "replies": 0}


async def test_the_plan_reads_only_this_users_rows_by_time(
    client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth
) -> None:
    await _seed(client, engine, auth)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "WITH u AS (INSERT INTO users (auth0_id) SELECT 'other' || g "
                "FROM generate_series(1, 20) AS g RETURNING id), "
                "s AS (INSERT INTO sessions (user_id, title) SELECT id, 'o' FROM u "
                "RETURNING id, user_id) "
                "INSERT INTO messages (session_id, user_id, role, content, worker_key, "
                "created_at) SELECT s.id, s.user_id, 'assistant', 'x', 1, "
                "now() - g * interval '1 minute' FROM s, generate_series(1, 1000) AS g"
            )
        )
        await conn.execute(text("ANALYZE messages, sessions"))
        user_id = await conn.scalar(text("SELECT id FROM users WHERE auth0_id = 'alice'"))
    statement = _REPORT["day"]
    params = {"user_id": user_id, "start": _at("2026-03-01"), "end": _at("2026-04-01")}
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        rows = await driver.fetch("EXPLAIN " + statement.sql, *statement.args(params))
    plan = "\n".join(row[0] for row in rows)
    assert "ix_messages_user_id_created_at" in plan, plan
    assert "Seq Scan on messages" not in plan, plan


def _at(day: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(day).replace(tzinfo=UTC)
