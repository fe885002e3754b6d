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

# Replies generated here and ended: (session, model, input, output, time).
REPLIES = [
    (0, "gpt-a", 10, 100, "2026-03-01 10:00+00"),
    (0, "gpt-a", 20, 200, "2026-03-01 23:59+00"),
    (1, "gpt-b", 30, 300, "2026-03-02 00:00+00"),
    (1, None, 1, 2, "2026-03-05 12:00+00"),
]

# A reply that ended, as the statement that ends one writes it: the message and its usage.
_ENDED = text(
    "WITH m AS (INSERT INTO messages (session_id, user_id, role, content, model, input_tokens, "
    "tokens, worker_key, created_at) SELECT id, user_id, 'assistant', 'r', :model, :i, :o, 7, "
    "CAST(CAST(:at AS text) AS timestamptz) FROM sessions WHERE id = :s RETURNING *) "
    "INSERT INTO reply_usage (message_id, user_id, session_id, model, created_at, input_tokens, "
    "output_tokens) SELECT id, user_id, session_id, model, created_at, input_tokens, tokens "
    "FROM m"
)


async def _seed(client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth) -> list[int]:
    sessions = []
    for title in ("one", "two"):
        response = await client.post("/api/sessions/", json={"title": title}, headers=auth("alice"))
        sessions.append(response.json()["id"])
    bob = (await client.post("/api/sessions/", json={"title": "b"}, headers=auth("bob"))).json()
    async with engine.begin() as conn:
        for index, model, inputs, outputs, at in REPLIES:
            params = {"s": sessions[index], "model": model, "i": inputs, "o": outputs, "at": at}
            await conn.execute(_ENDED, params)
        # Bob's usage is not alice's.
        params = {"s": bob["id"], "model": "gpt-a", "i": 0, "o": 9000, "at": "2026-03-01 11:00+00"}
        await conn.execute(_ENDED, params)
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


async def test_usage_outlives_deleted_and_expired_conversations(
    client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth
) -> None:
    sessions = await _seed(client, engine, auth)
    period = {"from": "2026-03-01", "to": "2026-03-31", "group_by": "session"}
    before = await _usage(client, auth, **period)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = :s"),
            {"s": sessions[1]},
        )
    deleted = await client.delete(f"/api/sessions/{sessions[0]}", headers=auth("alice"))
    assert deleted.status_code == 204
    after = await _usage(client, auth, **period)
    assert after == before
    assert after["total"] == {"input_tokens": 61, "output_tokens": 602, "replies": 4}
    assert [g["key"] for g in after["groups"]] == sorted(str(s) for s in sessions)


async def test_posted_messages_forks_and_imports_are_not_usage(
    client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth
) -> None:
    """Only the statement that ends a generated reply records usage: an assistant message a
    client posts with a token count, a fork's copy of a reply and an imported reply do not."""
    alice = auth("alice")
    sessions = await _seed(client, engine, auth)
    posted = await client.post(
        f"/api/messages/?session_id={sessions[0]}",
        json={"role": "assistant", "content": "from elsewhere", "tokens": 5000},
        headers=alice,
    )
    assert posted.status_code == 201, posted.text
    forked = await client.post(f"/api/sessions/{sessions[1]}/fork", json={}, headers=alice)
    assert forked.status_code == 201, forked.text
    exported = await client.get(f"/api/sessions/{sessions[0]}/export", headers=alice)
    imported = await client.post("/api/sessions/import", json=exported.json(), headers=alice)
    assert imported.status_code == 201, imported.text
    async with engine.connect() as conn:
        copies = await conn.scalar(text("SELECT count(*) FROM messages WHERE tokens > 0"))
    assert copies > len(REPLIES) + 1  # the copies carry token counts; they are not usage
    body = await _usage(client, auth, **{"from": "2026-01-01", "to": "2026-12-31"})
    assert body["total"] == {"input_tokens": 61, "output_tokens": 602, "replies": 4}


async def test_erasing_the_account_erases_its_usage(
    client: httpx.AsyncClient, engine: AsyncEngine, auth: Auth
) -> None:
    await _seed(client, engine, auth)
    erased = await client.delete("/api/users/me", headers=auth("alice"))
    assert erased.status_code == 204
    async with engine.connect() as conn:
        owners = await conn.execute(
            text(
                "SELECT u.auth0_id, count(*) FROM reply_usage AS r "
                "JOIN users AS u ON u.id = r.user_id GROUP BY 1"
            )
        )
        assert [tuple(row) for row in owners] == [("bob", 1)]
        assert await conn.scalar(text("SELECT count(*) FROM reply_usage")) == 1


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
                "FROM generate_series(1, 20) AS g RETURNING id) "
                "INSERT INTO reply_usage (message_id, user_id, session_id, created_at, "
                "input_tokens, output_tokens) SELECT 1000000 + u.id * 10000 + g, u.id, u.id, "
                "now() - g * interval '1 minute', 1, 1 FROM u, generate_series(1, 1000) AS g"
            )
        )
        await conn.execute(text("ANALYZE reply_usage"))
        user_id = await conn.scalar(text("SELECT id FROM users WHERE auth0_id = 'alice'"))
    statement = _REPORT["day"]
    params = {"user_id": user_id, "start": _at("2026-03-01"), "end": _at("2026-04-01")}
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        rows = await driver.fetch("EXPLAIN " + statement.sql, *statement.args(params))
    plan = "\n".join(row[0] for row in rows)
    assert "ix_reply_usage_user_id_created_at" in plan, plan
    assert "Seq Scan" not in plan, plan


def _at(day: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(day).replace(tzinfo=UTC)
