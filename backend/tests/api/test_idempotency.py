"""`Idempotency-Key` on the create endpoints: replay, mismatch, in flight, scope, expiry, races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_engine
from app.core.settings import Settings
from app.main import create_app
from app.persistence.unit_of_work import unit_of_work_factory

Auth = Callable[[str], dict[str, str]]


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


async def execute(engine: AsyncEngine, sql: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql))


async def test_same_key_same_body_replays_and_creates_nothing(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    headers = keyed(auth("alice"), "k-1")
    first = await client.post("/api/sessions/", json={"title": "Trip"}, headers=headers)
    # The same JSON object, serialised differently, is the same request.
    again = await client.post(
        "/api/sessions/",
        content=b'{ "title" :  "Trip" }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count(engine, "sessions") == 1


async def test_same_key_other_body_is_422(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    headers = keyed(auth("alice"), "k-2")
    assert (await client.post("/api/sessions/", json={"title": "a"}, headers=headers)).is_success
    other = await client.post("/api/sessions/", json={"title": "b"}, headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert "different request" in other.json()["detail"]
    assert await count(engine, "sessions") == 1


async def test_messages_replay_and_the_query_is_part_of_the_request(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    ids = [
        (await client.post("/api/sessions/", json={"title": t}, headers=auth("alice"))).json()["id"]
        for t in ("a", "b")
    ]
    headers = keyed(auth("alice"), "m-1")
    body = {"role": "user", "content": "hello"}
    first = await client.post(f"/api/messages/?session_id={ids[0]}", json=body, headers=headers)
    again = await client.post(f"/api/messages/?session_id={ids[0]}", json=body, headers=headers)
    other = await client.post(f"/api/messages/?session_id={ids[1]}", json=body, headers=headers)
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again.json() == first.json()
    assert await count(engine, "messages") == 1
    session = await client.get(f"/api/sessions/{ids[0]}", headers=auth("alice"))
    assert session.json()["message_count"] == 1


async def test_in_flight_is_409_and_an_abandoned_claim_is_taken_over(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    headers = keyed(auth("alice"), "k-3")
    assert (await client.post("/api/sessions/", json={"title": "a"}, headers=headers)).is_success
    # Make the key look like its first request is still running (a live claim).
    await execute(
        engine,
        "UPDATE idempotency_keys SET status_code = NULL, response_body = NULL, locked_at = now()",
    )
    busy = await client.post("/api/sessions/", json={"title": "a"}, headers=headers)
    assert busy.status_code == 409
    assert "still being processed" in busy.json()["detail"]
    assert await count(engine, "sessions") == 1
    # A claim older than the lock timeout belongs to a crashed process: the retry takes over.
    await execute(engine, "UPDATE idempotency_keys SET locked_at = now() - interval '2 minutes'")
    retry = await client.post("/api/sessions/", json={"title": "a"}, headers=headers)
    assert retry.status_code == 201
    replay = await client.post("/api/sessions/", json={"title": "a"}, headers=headers)
    assert replay.json() == retry.json()


async def test_keys_are_scoped_to_the_user(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = await client.post(
        "/api/sessions/", json={"title": "a"}, headers=keyed(auth("alice"), "shared")
    )
    bob = await client.post(
        "/api/sessions/", json={"title": "a"}, headers=keyed(auth("bob"), "shared")
    )
    assert alice.status_code == bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers
    assert alice.json()["id"] != bob.json()["id"]
    assert alice.json()["user_id"] != bob.json()["user_id"]
    assert await count(engine, "sessions") == 2


async def test_a_failed_request_does_not_consume_the_key(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    headers = keyed(auth("alice"), "k-4")
    missing = await client.post(
        "/api/messages/?session_id=424242", json={"role": "user", "content": "x"}, headers=headers
    )
    assert missing.status_code == 404
    assert await count(engine, "idempotency_keys") == 0


async def test_expired_keys_are_new_again_and_purged(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    headers = keyed(auth("alice"), "k-5")
    assert (await client.post("/api/sessions/", json={"title": "a"}, headers=headers)).is_success
    await execute(engine, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    reused = await client.post("/api/sessions/", json={"title": "b"}, headers=headers)
    assert reused.status_code == 201
    assert reused.json()["title"] == "b"
    # Someone's long-expired keys go with the next claim, in bounded batches.
    await execute(
        engine,
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, claim, expires_at) "
        "SELECT u.id, 'old-' || g, 'f', gen_random_uuid(), now() - interval '1 day' "
        "FROM users u, generate_series(1, 5) g",
    )
    await client.post("/api/sessions/", json={"title": "c"}, headers=keyed(auth("alice"), "k-6"))
    async with engine.connect() as conn:
        keys = (await conn.execute(text("SELECT key FROM idempotency_keys ORDER BY key"))).all()
    assert [k for (k,) in keys] == ["k-5", "k-6"]


async def test_keys_go_with_the_account(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    headers = keyed(auth("alice"), "k-7")
    assert (await client.post("/api/sessions/", json={"title": "a"}, headers=headers)).is_success
    assert (await client.delete("/api/users/me", headers=auth("alice"))).status_code == 204
    assert await count(engine, "idempotency_keys") == 0


@pytest.mark.parametrize(
    "key",
    [b"", b"x" * 256, "ключ".encode(), b"tab\there", b"bell\x07"],
    ids=["empty", "too-long", "non-ascii", "tab", "control"],
)
async def test_malformed_keys_are_422(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine, key: bytes
) -> None:
    headers = [(k.encode(), v.encode()) for k, v in auth("alice").items()]
    headers.append((b"Idempotency-Key", key))
    response = await client.post("/api/sessions/", json={"title": "a"}, headers=headers)
    assert response.status_code == 422, response.text
    assert await count(engine, "sessions") == 0


async def test_parallel_retries_create_exactly_once(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    headers = keyed(auth("alice"), "race")
    await client.get("/api/users/me", headers=headers)  # provision first: race on the key only
    responses = await asyncio.gather(
        *(client.post("/api/sessions/", json={"title": "a"}, headers=headers) for _ in range(12))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    created = [r.json() for r in responses if r.status_code == 201]
    assert created
    assert all(body == created[0] for body in created)
    assert await count(engine, "sessions") == 1


@pytest.fixture
async def second_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another app with its own engine and pool: what a second server process looks like."""
    engine = create_engine(settings)
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client
    await engine.dispose()


async def test_two_processes_share_the_keys(
    client: httpx.AsyncClient,
    second_process: httpx.AsyncClient,
    auth: Auth,
    engine: AsyncEngine,
) -> None:
    headers = keyed(auth("alice"), "multi")
    await client.get("/api/users/me", headers=headers)
    responses = await asyncio.gather(
        *(
            process.post("/api/sessions/", json={"title": "a"}, headers=headers)
            for process in (client, second_process) * 6
        )
    )
    assert {r.status_code for r in responses} <= {201, 409}
    assert await count(engine, "sessions") == 1
    replay = await second_process.post("/api/sessions/", json={"title": "a"}, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_late_original_cannot_record_over_a_takeover(
    app: FastAPI, engine: AsyncEngine, client: httpx.AsyncClient, auth: Auth
) -> None:
    user_id = (await client.get("/api/users/me", headers=auth("alice"))).json()["id"]
    factory = unit_of_work_factory(engine)
    slow, fast = str(uuid.uuid4()), str(uuid.uuid4())
    async with factory() as uow:
        claimed = await uow.idempotency.claim(
            user_id, "k", "f", slow, ttl_s=86400, lock_timeout_s=60
        )
        assert claimed is None
    await execute(engine, "UPDATE idempotency_keys SET locked_at = now() - interval '2 minutes'")
    async with factory() as uow:
        claimed = await uow.idempotency.claim(
            user_id, "k", "f", fast, ttl_s=86400, lock_timeout_s=60
        )
        assert claimed is None
    async with factory() as uow, uow.atomic():
        assert not await uow.idempotency.complete(user_id, "k", slow, 201, "{}")
        assert await uow.idempotency.complete(user_id, "k", fast, 201, '{"id": 1}')


async def test_quotas_answer_409_and_change_nothing(
    settings: Settings, engine: AsyncEngine, auth: Auth
) -> None:
    limited = settings.model_copy(
        update={"max_sessions_per_user": 2, "max_messages_per_session": 2}
    )
    app = create_app(limited, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        ids = [
            (await client.post("/api/sessions/", json={"title": "s"}, headers=auth("a"))).json()[
                "id"
            ]
            for _ in range(2)
        ]
        third = await client.post("/api/sessions/", json={"title": "s"}, headers=auth("a"))
        assert third.status_code == 409
        assert "maximum" in third.json()["detail"]
        url = f"/api/messages/?session_id={ids[0]}"
        body = {"role": "user", "content": "x"}
        for _ in range(2):
            assert (await client.post(url, json=body, headers=auth("a"))).status_code == 201
        over = await client.post(url, json=body, headers=auth("a"))
        assert over.status_code == 409
        session = await client.get(f"/api/sessions/{ids[0]}", headers=auth("a"))
        assert session.json()["message_count"] == 2
    assert await count(engine, "sessions") == 2
    assert await count(engine, "messages") == 2
