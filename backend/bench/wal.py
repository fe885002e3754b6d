"""WAL written per byte of reply text: `python -m bench wal` (from backend/).

20 concurrent replies of 1,000 tokens each (the simulated model: one token every 10 ms, so about
10 s per reply) against ONE uvicorn worker of the app. The WAL position is read before the
replies start and after all of them have ended and their final state is saved (no message of
theirs is `streaming` any more); the figure is

    pg_wal_lsn_diff(after, before) / sum(octet_length(content)) of the 20 final replies

i.e. bytes of WAL per byte of reply text. Issue #7 targets at most 3.

WAL is per server, not per database: the database must be one nothing else writes to meanwhile.
So this benchmark uses its own embedded PostgreSQL unless BENCH_DATABASE_URL names another
server (DATABASE_URL, the app's own and maybe busy database, is ignored here).

Same run, same server, as a floor: the same 20 exchanges (each user message and its final reply)
written once each, one transaction per reply, with raw asyncpg. With pg_walinspect (shipped with
the embedded server) both are broken down by WAL record type.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from bench import BenchOptions
from bench.support.database import BenchDatabase, bench_database
from bench.support.errors import BenchError
from bench.support.report import table
from bench.support.servers import uvicorn_server

DESCRIPTION = "bytes of WAL per byte of reply text: 20 concurrent 1,000-token replies, one worker"

REPLIES = 20
TOKENS = 1000
DELAY_MS = 10
#: Issue #7's goal for the app.
TARGET = 3.0
#: How long the replies may take in all before the run is declared failed.
TIMEOUT_S = 120.0
#: Record types shown in the breakdown.
TOP_RECORDS = 8

# The floor: one exchange, final, written once (the session's counter and recency included).
_WRITE_ONCE = """
WITH s AS (
    UPDATE sessions SET message_count = message_count + 2, updated_at = clock_timestamp()
    WHERE id = $1 RETURNING id, user_id, updated_at
)
INSERT INTO messages (session_id, user_id, role, content, tokens, input_tokens, status, created_at)
SELECT s.id, s.user_id, r.role, r.content, r.tokens, r.input_tokens, 'completed', s.updated_at
FROM s, (VALUES ('user', $2, 0, 0), ('assistant', $3, $4::int, $5::int))
    AS r(role, content, tokens, input_tokens)
"""


@dataclass
class Streamed:
    """What one reply's SSE stream told the client."""

    reply_id: int | None = None
    final_event: str | None = None
    status: str | None = None
    first_event_s: float | None = None
    done_s: float | None = None


async def stream_reply(
    client: httpx.AsyncClient, session_id: int, prompt: str, headers: dict[str, str]
) -> Streamed:
    """Start a reply and read its stream to the final `done` / `error` event."""
    out = Streamed()
    started = time.perf_counter()
    async with client.stream(
        "POST", f"/api/sessions/{session_id}/replies", json={"content": prompt}, headers=headers
    ) as response:
        if response.status_code != 200:
            body = (await response.aread()).decode(errors="replace")
            raise BenchError(f"starting a reply answered {response.status_code}: {body[:300]}")
        event, data = "message", ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:
                if out.first_event_s is None:
                    out.first_event_s = time.perf_counter() - started
                payload = json.loads(data)
                if event == "message":
                    out.reply_id = payload["id"]
                elif event in {"done", "error"}:
                    message = payload if event == "done" else payload.get("message") or {}
                    out.final_event, out.status = event, message.get("status")
                    out.done_s = time.perf_counter() - started
                    return out
                event, data = "message", ""
    return out


async def _lsn(conn: asyncpg.Connection[Any]) -> str:
    lsn: str = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    return lsn


async def _wal_between(conn: asyncpg.Connection[Any], before: str, after: str) -> int:
    diff = await conn.fetchval(
        "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)", after, before
    )
    return int(diff)


async def _walinspect(conn: asyncpg.Connection[Any], embedded: bool) -> bool:
    """pg_walinspect, when it is there (or we may create it: our own embedded server)."""
    try:
        if embedded:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        return bool(
            await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_walinspect'")
        )
    except asyncpg.PostgresError:
        return False


async def _breakdown(
    conn: asyncpg.Connection[Any], before: str, after: str
) -> list[dict[str, Any]] | None:
    """WAL between the two positions by record type (pg_walinspect), biggest first."""
    try:
        for _ in range(100):  # pg_walinspect reads flushed WAL only
            if await conn.fetchval("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn", after):
                break
            await asyncio.sleep(0.1)
        rows = await conn.fetch(
            """
            SELECT "resource_manager/record_type" AS record_type, count, record_size,
                   fpi_size, combined_size
            FROM pg_get_wal_stats($1::text::pg_lsn, $2::text::pg_lsn, true)
            WHERE count > 0 ORDER BY combined_size DESC
            """,
            before,
            after,
        )
    except asyncpg.PostgresError:
        return None
    return [dict(row) for row in rows]


async def _wait_final(conn: asyncpg.Connection[Any], reply_ids: list[int]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while await conn.fetchval(
        "SELECT count(*) FROM messages WHERE id = ANY($1::bigint[]) AND status = 'streaming'",
        reply_ids,
    ):
        if time.monotonic() > deadline:
            raise BenchError("replies still `streaming` long after their streams ended")
        await asyncio.sleep(0.05)


async def run(options: BenchOptions) -> dict[str, Any]:
    """The `python -m bench` entry point; the load options do not apply (the issue fixes it)."""
    del options
    subject = f"bench-wal-{uuid.uuid4().hex[:12]}"
    async with bench_database(use_database_url=False) as db:
        conn = await db.connect()
        try:
            return await _measure(db, conn, subject)
        finally:
            await conn.execute("DELETE FROM users WHERE auth0_id = $1", subject)
            await conn.close()


async def _measure(
    db: BenchDatabase, conn: asyncpg.Connection[Any], subject: str
) -> dict[str, Any]:
    from app.core.security import LocalTokens
    from app.core.settings import Settings

    if not db.embedded:
        print(
            "note: BENCH_DATABASE_URL is set; WAL is counted for the whole server, so the figure "
            "holds only if nothing else writes to it meanwhile"
        )
    inspect = await _walinspect(conn, db.embedded)
    secret = secrets.token_urlsafe(48)
    settings = Settings(
        _env_file=None,
        environment="production",
        database_url=db.url,
        auth_secret=secret,
        allow_local_auth_in_production=True,
        metrics_public=True,  # nothing scrapes it here
    )
    env = {
        "ENVIRONMENT": "production",
        "ALLOW_LOCAL_AUTH_IN_PRODUCTION": "true",
        "METRICS_PUBLIC": "true",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": db.url,
        "AUTH_SECRET": secret,
        "LLM_PROVIDER": "simulated",
        "SIMULATED_TOKENS": str(TOKENS),
        "SIMULATED_DELAY_MS": str(DELAY_MS),
    }
    headers = {"Authorization": f"Bearer {LocalTokens(settings).mint(subject, ttl_s=3600)}"}

    async with uvicorn_server("app", "app.main:create_app", env=env, ready_path="/health") as app:
        timeout = httpx.Timeout(TIMEOUT_S, connect=10)
        async with httpx.AsyncClient(base_url=app.url, timeout=timeout) as client:
            sessions = []
            for i in range(REPLIES):
                created = await client.post(
                    "/api/sessions/", json={"title": f"wal {i}"}, headers=headers
                )
                if created.status_code != 201:
                    raise BenchError(f"creating a session answered {created.status_code}")
                sessions.append(int(created.json()["id"]))
            await asyncio.sleep(1.0)  # let start-up writes (the hub's sweep) settle
            before = await _lsn(conn)
            wall = time.perf_counter()
            streams = await asyncio.gather(
                *(
                    stream_reply(client, sid, f"WAL benchmark question number {i}", headers)
                    for i, sid in enumerate(sessions)
                )
            )
            reply_ids = [s.reply_id for s in streams if s.reply_id is not None]
            if len(reply_ids) != REPLIES:
                raise BenchError(f"only {len(reply_ids)} of {REPLIES} replies said their id")
            await _wait_final(conn, reply_ids)
            after = await _lsn(conn)
            wall = time.perf_counter() - wall

    wal = await _wal_between(conn, before, after)
    finals = await conn.fetch(
        """
        SELECT m.id, m.session_id, m.status, m.tokens, m.input_tokens, m.content,
               octet_length(m.content) AS bytes, u.content AS prompt
        FROM messages AS m
        JOIN messages AS u ON u.session_id = m.session_id AND u.role = 'user'
        WHERE m.id = ANY($1::bigint[])
        """,
        reply_ids,
    )
    completed = [r for r in finals if r["status"] == "completed" and r["tokens"] == TOKENS]
    if len(completed) != REPLIES:
        states = sorted((r["status"], r["tokens"]) for r in finals)
        raise BenchError(f"expected {REPLIES} completed replies of {TOKENS} tokens: {states}")
    text_bytes = sum(int(r["bytes"]) for r in finals)
    breakdown = await _breakdown(conn, before, after) if inspect else None

    floor = await _floor(conn, finals)
    floor_breakdown = await _breakdown(conn, floor["before"], floor["after"]) if inspect else None
    return _report(
        wal, text_bytes, wall, streams, floor["wal_bytes"], breakdown, floor_breakdown, db
    )


async def _floor(conn: asyncpg.Connection[Any], finals: list[asyncpg.Record]) -> dict[str, Any]:
    """The same exchanges, final, written once each (one transaction per reply) in fresh
    sessions of the same user."""
    user_id = await conn.fetchval(
        "SELECT user_id FROM sessions WHERE id = $1", finals[0]["session_id"]
    )
    session_ids = [
        await conn.fetchval(
            "INSERT INTO sessions (user_id, title) VALUES ($1, $2) RETURNING id",
            user_id,
            f"wal floor {i}",
        )
        for i in range(len(finals))
    ]
    before = await _lsn(conn)
    for session_id, row in zip(session_ids, finals, strict=True):
        await conn.execute(
            _WRITE_ONCE,
            session_id,
            row["prompt"],
            row["content"],
            row["tokens"],
            row["input_tokens"],
        )
    after = await _lsn(conn)
    return {"before": before, "after": after, "wal_bytes": await _wal_between(conn, before, after)}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _report(
    wal: int,
    text_bytes: int,
    wall: float,
    streams: list[Streamed],
    floor_wal: int,
    breakdown: list[dict[str, Any]] | None,
    floor_breakdown: list[dict[str, Any]] | None,
    db: BenchDatabase,
) -> dict[str, Any]:
    ratio = wal / text_bytes
    floor_ratio = floor_wal / text_bytes
    done = [s.done_s for s in streams if s.done_s is not None]
    print(
        f"{REPLIES} concurrent replies x {TOKENS} tokens ({DELAY_MS} ms each), one worker; "
        f"all completed in {wall:.1f} s (stream p50 {_percentile(done, 50):.2f} s, "
        f"max {max(done):.2f} s)"
    )
    rows: list[list[object]] = [
        ["app (streamed)", f"{wal:,}", f"{text_bytes:,}", f"{ratio:.2f}", f"{wal / REPLIES:,.0f}"],
        [
            "floor (final rows written once)",
            f"{floor_wal:,}",
            f"{text_bytes:,}",
            f"{floor_ratio:.2f}",
            f"{floor_wal / REPLIES:,.0f}",
        ],
    ]
    print(table(["writer", "WAL bytes", "reply text bytes", "WAL/text", "WAL per reply"], rows))
    for label, records in (("app", breakdown), ("floor", floor_breakdown)):
        if not records:
            continue
        top = records[:TOP_RECORDS]
        print(f"{label}: WAL by record type (pg_walinspect), biggest first")
        print(
            table(
                ["record", "count", "record bytes", "full-page images", "total"],
                [
                    [
                        r["record_type"],
                        r["count"],
                        f"{r['record_size']:,}",
                        f"{r['fpi_size']:,}",
                        f"{r['combined_size']:,}",
                    ]
                    for r in top
                ],
            )
        )
    verdict = "meets" if ratio <= TARGET else "misses"
    headline = (
        f"{ratio:.2f} bytes of WAL per byte of reply text ({verdict} the target of "
        f"{TARGET:g}; writing the final rows once: {floor_ratio:.2f}); "
        f"{REPLIES}/{REPLIES} replies completed"
    )
    return {
        "headline": headline,
        "replies": REPLIES,
        "tokens_per_reply": TOKENS,
        "simulated_delay_ms": DELAY_MS,
        "workers": 1,
        "embedded_database": db.embedded,
        "wal_bytes": wal,
        "reply_text_bytes": text_bytes,
        "wal_per_text_byte": round(ratio, 3),
        "target_wal_per_text_byte": TARGET,
        "floor_wal_bytes": floor_wal,
        "floor_wal_per_text_byte": round(floor_ratio, 3),
        "wall_s": round(wall, 3),
        "stream_done_s": sorted(round(x, 3) for x in done),
        "wal_by_record_type": breakdown,
        "floor_wal_by_record_type": floor_breakdown,
    }
