"""`USER_DAILY_TOKEN_LIMIT`: replies refused (429) once a user's tokens since UTC midnight reach
it, before anything is written; exact across processes (the check and the start run under the
user's lock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings import Settings
from app.persistence.repositories.usage import USAGE_LOCK_NAMESPACE
from tests.replies.conftest import Serve
from tests.replies.test_multiprocess import process_env, serve_subprocess
from tests.support.replies import new_session, reply_stream, wait_until_ended
from tests.support.sse import collect

Auth = Callable[[str], dict[str, str]]
LIMIT = 1000


async def _spend(engine: AsyncEngine, session_id: int, tokens: int) -> None:
    """A finished reply of today that used `tokens` (input + output), as if generated here:
    the message and its usage record, as the statement that ends a reply writes them."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "WITH m AS (INSERT INTO messages (session_id, user_id, role, content, "
                "input_tokens, tokens, worker_key, model) SELECT id, user_id, 'assistant', "
                "'spent', :i, :o, 1, 'm' FROM sessions WHERE id = :s RETURNING *) "
                "INSERT INTO reply_usage (message_id, user_id, session_id, model, created_at, "
                "input_tokens, output_tokens) SELECT id, user_id, session_id, model, "
                "created_at, input_tokens, tokens FROM m"
            ),
            {"s": session_id, "i": tokens // 2, "o": tokens - tokens // 2},
        )


async def _rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count: int = await conn.scalar(text("SELECT count(*) FROM messages"))
    return count


async def test_a_reply_at_the_limit_is_429_and_writes_nothing(
    serve: Serve, engine: AsyncEngine, auth: Auth
) -> None:
    server = await serve(user_daily_token_limit=LIMIT)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "first", alice) as response:
            assert response.status_code == 200
            started = await collect(response)
        reply_id = started[1].data["id"]
        await wait_until_ended(http, reply_id, alice)
        await _spend(engine, sid, LIMIT)  # now over the limit
        rows = await _rows(engine)

        before = datetime.now(UTC)
        refused = await http.post(
            f"/api/sessions/{sid}/replies", json={"content": "more"}, headers=alice
        )
        regenerated = await http.post(f"/api/messages/{reply_id}/regenerate", headers=alice)
        # Other users and other routes are not affected.
        bob_session = await new_session(http, auth("bob"))
        async with reply_stream(http, bob_session, "hi", auth("bob")) as response:
            assert response.status_code == 200
    for response in (refused, regenerated):
        assert response.status_code == 429, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 429
        assert problem["limit"] == LIMIT
        assert "daily limit" in problem["detail"]
        midnight = datetime.combine(before.date() + timedelta(days=1), datetime.min.time(), UTC)
        retry_after = int(response.headers["Retry-After"])
        assert 0 < retry_after <= (midnight - before).total_seconds() + 2
    assert await _rows(engine) == rows + 2  # bob's user message and reply only


async def test_usage_of_yesterday_does_not_count(
    serve: Serve, engine: AsyncEngine, auth: Auth
) -> None:
    server = await serve(user_daily_token_limit=LIMIT)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        await _spend(engine, sid, 10 * LIMIT)
        async with engine.begin() as conn:
            for table in ("messages", "reply_usage"):
                await conn.execute(
                    text(f"UPDATE {table} SET created_at = now() - interval '1 day'")
                )
        async with reply_stream(http, sid, "today", alice) as response:
            assert response.status_code == 200


async def test_twenty_starts_at_once_in_two_processes_do_not_overshoot(
    serve: Serve, settings: Settings, engine: AsyncEngine, auth: Auth
) -> None:
    """One token left: of 20 replies started at once (10 per process, each in its own
    session), exactly one starts; it counts as used while it streams, so every other start,
    in either process, sees the limit reached."""
    here = await serve(user_daily_token_limit=LIMIT)
    env = process_env(settings, user_daily_token_limit=LIMIT)
    alice = auth("alice")
    async with (
        serve_subprocess(env) as other,
        httpx.AsyncClient(base_url=here.url, timeout=30) as a,
        httpx.AsyncClient(base_url=other.url, timeout=30) as b,
    ):
        sessions = [await new_session(a, alice) for _ in range(20)]
        await _spend(engine, sessions[0], LIMIT - 1)

        async def start(client: httpx.AsyncClient, sid: int) -> int:
            async with reply_stream(client, sid, "go", alice) as response:
                if response.status_code == 200:
                    await collect(response)
                return response.status_code

        statuses = await asyncio.gather(
            *(start(a if n % 2 else b, sid) for n, sid in enumerate(sessions))
        )
    assert sorted(statuses) == [200] + [429] * 19, statuses


async def test_a_start_waits_for_the_users_usage_lock(
    serve: Serve, engine: AsyncEngine, auth: Auth
) -> None:
    """What makes the limit exact: a start checks and writes holding the user's lock, so
    while another transaction (any process) holds it, the start waits."""
    server = await serve(user_daily_token_limit=LIMIT)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with engine.connect() as holder:
            user_id = await holder.scalar(
                text("SELECT user_id FROM sessions WHERE id = :s"), {"s": sid}
            )
            await holder.execute(
                text("SELECT pg_advisory_xact_lock(:ns, CAST(:u AS integer))"),
                {"ns": USAGE_LOCK_NAMESPACE, "u": user_id},
            )

            async def start() -> int:
                async with reply_stream(http, sid, "wait", alice) as response:
                    return response.status_code

            started = asyncio.create_task(start())
            async with engine.connect() as watcher:
                for _ in range(500):  # a bounded wait for the start to queue on the lock
                    waiting = await watcher.scalar(
                        text(
                            "SELECT count(*) FROM pg_locks "
                            "WHERE locktype = 'advisory' AND NOT granted"
                        )
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.02)
            assert waiting == 1
            assert not started.done()
            await holder.rollback()
        assert await started == 200


async def test_deleting_a_conversation_does_not_give_its_tokens_back(
    serve: Serve, engine: AsyncEngine, auth: Auth
) -> None:
    """The limit reads the usage ledger, which outlives conversations: delete the session (or
    only the reply) that used today's tokens and the next start is still refused."""
    server = await serve(user_daily_token_limit=1)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        spent = await new_session(http, alice)
        async with reply_stream(http, spent, "use them all", alice) as response:
            assert response.status_code == 200
            events = await collect(response)
        done = events[-1].data
        assert done["status"] == "completed"
        used = done["tokens"] + done["input_tokens"]
        assert used > 1
        deleted = await http.delete(f"/api/sessions/{spent}", headers=alice)
        assert deleted.status_code == 204
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM messages")) == 0

        fresh = await new_session(http, alice)
        refused = await http.post(
            f"/api/sessions/{fresh}/replies", json={"content": "again"}, headers=alice
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["used"] == used
        by_session = {"group_by": "session"}
        report = await http.get("/api/users/me/usage", params=by_session, headers=alice)
        assert report.json()["groups"] == [
            {
                "key": str(spent),
                "input_tokens": done["input_tokens"],
                "output_tokens": done["tokens"],
                "replies": 1,
            }
        ]


async def test_a_reply_deleted_while_it_streams_still_counts(
    serve: Serve, engine: AsyncEngine, auth: Auth
) -> None:
    """Deleting the session mid-reply stops the generation, and what the reply used so far
    goes in the ledger: start, delete, repeat is no way round the limit."""
    server = await serve(
        user_daily_token_limit=1, simulated_tokens=400, simulated_delay_ms=10, reply_flush_ms=50
    )
    alice = auth("alice")
    question = "q" * 2000  # the prompt's estimate: 500 tokens
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, question, alice) as response:
            received = await collect(response, limit=6)  # user, message, 4 deltas
        reply_id = received[1].data["id"]
        assert [e.event for e in received[2:]] == ["delta"] * 4
        deleted = await http.delete(f"/api/sessions/{sid}", headers=alice)
        assert deleted.status_code == 204

        recorded = await _ledger_row(engine, reply_id)
        assert recorded is not None, "the deleted reply's usage was not recorded"
        inputs, outputs = recorded
        assert inputs == 500  # no usage report came: the prompt's estimate
        assert 4 <= outputs < 400  # what it streamed until it was stopped

        fresh = await new_session(http, alice)
        refused = await http.post(
            f"/api/sessions/{fresh}/replies", json={"content": "again"}, headers=alice
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["used"] == inputs + outputs


async def _ledger_row(engine: AsyncEngine, message_id: int) -> tuple[int, int] | None:
    """The reply's (input, output) tokens in the usage ledger, once it is there (bounded)."""
    async with engine.connect() as conn:
        for _ in range(250):
            row = (
                await conn.execute(
                    text(
                        "SELECT input_tokens, output_tokens FROM reply_usage WHERE message_id = :m"
                    ),
                    {"m": message_id},
                )
            ).one_or_none()
            if row is not None:
                return row.input_tokens, row.output_tokens
            await asyncio.sleep(0.02)
    return None


async def test_a_cancelled_reply_counts_its_prompt_by_estimate(
    serve: Serve, engine: AsyncEngine, auth: Auth
) -> None:
    """A cancel closes the model's stream before its usage report: the message keeps the
    reported input (none: 0), the ledger counts the prompt's estimate, so cancelling just before
    the end does not keep a long prompt out of the limit."""
    server = await serve(simulated_tokens=400, simulated_delay_ms=10)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "c" * 4000, alice) as response:
            received = await collect(response, limit=4)  # user, message, 2 deltas
            reply_id = received[1].data["id"]
            cancelled = await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)
        assert cancelled.status_code == 200, cancelled.text
        message = cancelled.json()
        assert message["status"] == "cancelled"
        assert message["input_tokens"] == 0
        assert await _ledger_row(engine, reply_id) == (1000, message["tokens"])
