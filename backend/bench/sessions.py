"""`GET /api/sessions/?limit=50` on the real app vs. a raw-asyncpg floor, driven by wrk.

One user owns 50 sessions of 20 messages each. Both servers run under uvicorn with one worker on
127.0.0.1 against the same database and answer with the same JSON body; wrk drives them with the
same parameters, alternately (A B, then B A, ...) so that drift on a noisy machine cancels out.
The figure to quote is the ratio app / baseline of requests per second.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event

from bench import BenchOptions
from bench.support.database import BenchDatabase, bench_database
from bench.support.errors import BenchError
from bench.support.report import mean, table
from bench.support.servers import Server, event_loop_and_parser, uvicorn_server
from bench.support.wrk import WrkRun, ensure_wrk, run_wrk

DESCRIPTION = "GET /api/sessions/?limit=50 (50 sessions x 20 messages): app vs raw asyncpg"

SESSIONS = 50
MESSAGES_PER_SESSION = 20
PATH = "/api/sessions/?limit=50"
#: Backends publish their statistics about once a second; wait that long before reading them.
STATS_FLUSH_S = 1.2
#: Requests whose database work is counted in-process (after one warm-up request).
COUNTED_REQUESTS = 20


async def seed(conn: asyncpg.Connection[Any], subject: str) -> int:
    """One user, SESSIONS sessions, MESSAGES_PER_SESSION messages each; returns the user id.

    Plain SQL that respects the schema: `message_count` equals the rows inserted, `updated_at`
    is the newest message's time (as the app keeps it), timestamps carry microseconds.
    """
    start = datetime.now(UTC) - timedelta(days=1, microseconds=123_457)
    async with conn.transaction():
        user_id: int = await conn.fetchval(
            "INSERT INTO users (auth0_id) VALUES ($1) RETURNING id", subject
        )
        await conn.execute(
            """
            INSERT INTO sessions (user_id, title, message_count, created_at, updated_at)
            SELECT $1, 'Bench session ' || s || ' - café', $2,
                   $3::timestamptz + s * interval '1 minute',
                   $3::timestamptz + s * interval '1 minute' + ($2 - 1) * interval '1.5 second'
            FROM generate_series(1, $4::int) AS s
            """,
            user_id,
            MESSAGES_PER_SESSION,
            start,
            SESSIONS,
        )
        await conn.execute(
            """
            INSERT INTO messages (session_id, role, content, tokens, created_at)
            SELECT s.id, CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END,
                   'Message ' || m || ' of session ' || s.id, m * 7,
                   s.created_at + (m - 1) * interval '1.5 second'
            FROM sessions AS s, generate_series(1, $2::int) AS m
            WHERE s.user_id = $1
            """,
            user_id,
            MESSAGES_PER_SESSION,
        )
    rows = await conn.fetch(
        """
        SELECT s.message_count, count(m.id) AS actual
        FROM sessions AS s LEFT JOIN messages AS m ON m.session_id = s.id
        WHERE s.user_id = $1 GROUP BY s.id
        """,
        user_id,
    )
    if len(rows) != SESSIONS or any(r["message_count"] != r["actual"] for r in rows):
        raise BenchError("seeding left message_count inconsistent with the messages table")
    return user_id


async def check_same_answer(app: Server, baseline: Server, token: str) -> dict[str, Any]:
    """Both answer 200 with the caller's 50 sessions, and with the same JSON."""
    bodies: dict[str, bytes] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for server in (app, baseline):
            response = await client.get(
                server.url + PATH, headers={"Authorization": f"Bearer {token}"}
            )
            items = response.json() if response.status_code == 200 else None
            if not isinstance(items, list) or len(items) != SESSIONS:
                raise BenchError(
                    f"{server.name}: expected 200 with {SESSIONS} sessions, got "
                    f"{response.status_code}: {response.text[:300]}"
                )
            if any(item["message_count"] != MESSAGES_PER_SESSION for item in items):
                raise BenchError(f"{server.name}: a session's message_count is not 20")
            bodies[server.name] = response.content
    if json.loads(bodies["app"]) != json.loads(bodies["baseline"]):
        raise BenchError("the baseline's JSON differs from the app's: it would not be a floor")
    return {
        "status": 200,
        "items": SESSIONS,
        "body_bytes": len(bodies["app"]),
        "bodies_byte_identical": bodies["app"] == bodies["baseline"],
    }


async def count_database_work(db: BenchDatabase, secret: str, subject: str) -> dict[str, float]:
    """Per request: SQL statements, transaction control and pool pings, seen in-process.

    Uses the app's own engine settings behind httpx's ASGITransport. SQLAlchemy events count
    the statements and transactions; the dialect's ping is wrapped to count `pool_pre_ping`
    checks, each of which costs three round trips with the asyncpg dialect (BEGIN; ";";
    ROLLBACK). Checked once against PostgreSQL's statement log.
    """
    from app.core.database import create_engine
    from app.core.security import LocalTokens
    from app.core.settings import Settings
    from app.main import create_app

    settings = Settings(_env_file=None, database_url=db.url, auth_secret=secret)
    engine = create_engine(settings)
    counts: Counter[str] = Counter()
    sync_engine = engine.sync_engine

    def counter(name: str) -> Callable[..., None]:
        def count(*_: Any) -> None:
            counts[name] += 1

        return count

    event.listen(sync_engine, "before_cursor_execute", counter("sql_statements"))
    event.listen(sync_engine, "begin", counter("begins"))
    event.listen(sync_engine, "commit", counter("commits"))
    event.listen(sync_engine, "rollback", counter("rollbacks"))
    dialect = sync_engine.dialect
    ping = dialect.do_ping

    def counting_ping(dbapi_connection: Any) -> bool:
        counts["pre_pings"] += 1
        return ping(dbapi_connection)

    dialect.do_ping = counting_ping  # type: ignore[method-assign]

    headers = {"Authorization": f"Bearer {LocalTokens(settings).mint(subject, ttl_s=600)}"}
    transport = httpx.ASGITransport(app=create_app(settings, engine=engine))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            (await client.get(PATH, headers=headers)).raise_for_status()
            counts.clear()
            for _ in range(COUNTED_REQUESTS):
                (await client.get(PATH, headers=headers)).raise_for_status()
    finally:
        await engine.dispose()
    per_request = {key: value / COUNTED_REQUESTS for key, value in sorted(counts.items())}
    per_request["round_trips"] = (
        per_request.get("sql_statements", 0)
        + per_request.get("begins", 0)
        + per_request.get("commits", 0)
        + per_request.get("rollbacks", 0)
        + 3 * per_request.get("pre_pings", 0)
    )
    return per_request


def _check_clean(target: str, run: WrkRun) -> None:
    if run.non_2xx_3xx or run.socket_errors or not run.requests:
        raise BenchError(
            f"{target}: {run.requests} requests, {run.non_2xx_3xx} non-2xx/3xx, "
            f"{run.socket_errors} socket errors: the figures would not be comparable"
        )


async def run(options: BenchOptions) -> dict[str, Any]:
    ensure_wrk()
    subject = f"bench-{uuid.uuid4().hex[:12]}"
    secret = secrets.token_urlsafe(48)
    async with bench_database() as db:
        conn = await db.connect()
        try:
            user_id = await seed(conn, subject)
            try:
                return await _measure(options, db, conn, subject, user_id, secret)
            finally:
                await conn.execute("DELETE FROM users WHERE id = $1", user_id)
        finally:
            await conn.close()


async def _measure(
    options: BenchOptions,
    db: BenchDatabase,
    conn: asyncpg.Connection[Any],
    subject: str,
    user_id: int,
    secret: str,
) -> dict[str, Any]:
    from app.core.security import LocalTokens
    from app.core.settings import Settings

    settings = Settings(
        _env_file=None,
        environment="production",
        log_level="WARNING",
        database_url=db.url,
        auth_secret=secret,
        # Local HS256 tokens keep the bench self-contained; production proper would use OIDC.
        allow_local_auth_in_production=True,
        metrics_public=True,
    )
    # Pinned in the child's environment, which outranks any .env file it would read.
    app_env = {
        "ENVIRONMENT": settings.environment,
        "ALLOW_LOCAL_AUTH_IN_PRODUCTION": "true",
        "LOG_LEVEL": settings.log_level,
        "DATABASE_URL": db.url,
        "AUTH_SECRET": secret,
        "AUTH_ISSUER": settings.auth_issuer,
        "AUTH_AUDIENCE": settings.auth_audience,
        "DB_POOL_SIZE": str(settings.db_pool_size),
        "DB_MAX_OVERFLOW": str(settings.db_max_overflow),
    }
    baseline_env = {
        "BENCH_PG_CONNECT": json.dumps(db.connect_kwargs()),
        "BENCH_USER_ID": str(user_id),
        "BENCH_POOL_SIZE": str(settings.db_pool_size),
    }
    token = LocalTokens(settings).mint(subject, ttl_s=3600)
    auth = {"Authorization": f"Bearer {token}"}

    database_work = await count_database_work(db, secret, subject)

    async with (
        uvicorn_server(
            "app", "app.main:create_app", env=app_env, ready_path="/health"
        ) as app_server,
        uvicorn_server(
            "baseline",
            "bench.baselines.sessions_raw:create_app",
            env=baseline_env,
            ready_path=PATH,
        ) as baseline_server,
    ):
        servers = {"app": app_server, "baseline": baseline_server}
        answer = await check_same_answer(app_server, baseline_server, token)

        async def load(target: str, seconds: float) -> WrkRun:
            server = servers[target]
            sessions_before = await _database_sessions(conn)
            cpu_before = server.cpu_seconds()
            result = await run_wrk(
                server.url + PATH,
                duration_s=seconds,
                connections=options.connections,
                threads=options.threads,
                headers=auth,
            )
            cpu_after = server.cpu_seconds()
            _check_clean(target, result)
            if cpu_before is not None and cpu_after is not None:
                cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
                result = replace(result, server_cpu_ms_per_request=round(cpu_ms, 3))
            await asyncio.sleep(STATS_FLUSH_S)
            sessions_after = await _database_sessions(conn)
            if sessions_before is None or sessions_after is None:
                return result
            return replace(result, database_connections_opened=sessions_after - sessions_before)

        if options.warmup_s > 0:
            for target in servers:
                await load(target, options.warmup_s)
        runs: list[tuple[int, str, WrkRun]] = []
        for round_no in range(options.rounds):
            order = ("app", "baseline") if round_no % 2 == 0 else ("baseline", "app")
            for target in order:
                runs.append((round_no + 1, target, await load(target, options.duration_s)))
        app_errors = _logged_errors(app_server)

    return _summarise(options, runs, answer, database_work, app_errors)


async def _database_sessions(conn: asyncpg.Connection[Any]) -> int | None:
    """Connections ever opened to this database (`pg_stat_database.sessions`, PostgreSQL 14+).

    A pool that opens connections under load (overflow beyond its size, closed on return)
    pays a connection set-up per request; this makes it visible.
    """
    try:
        value = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
    except asyncpg.UndefinedColumnError:  # PostgreSQL before 14
        return None
    return int(value or 0)


def _logged_errors(server: Server) -> int:
    return sum(1 for line in server.log_tail(10_000).splitlines() if "Traceback" in line)


def _mean_cpu(results: list[WrkRun]) -> float | None:
    values = [r.server_cpu_ms_per_request for r in results]
    known = [v for v in values if v is not None]
    return round(mean(known), 3) if known and len(known) == len(values) else None


def _cpu_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _summarise(
    options: BenchOptions,
    runs: list[tuple[int, str, WrkRun]],
    answer: dict[str, Any],
    database_work: dict[str, float],
    app_errors: int,
) -> dict[str, Any]:
    by_target: dict[str, list[WrkRun]] = {"app": [], "baseline": []}
    for _, target, result in runs:
        by_target[target].append(result)
    summary = {
        target: {
            "requests_per_s": round(mean([r.requests_per_s for r in results]), 1),
            "latency_p50_ms": round(mean([r.latency_p50_ms for r in results]), 3),
            "latency_p99_ms": round(mean([r.latency_p99_ms for r in results]), 3),
            "requests": sum(r.requests for r in results),
            "non_2xx_3xx": sum(r.non_2xx_3xx for r in results),
            "database_connections_opened": sum(r.database_connections_opened or 0 for r in results),
            "server_cpu_ms_per_request": _mean_cpu(results),
        }
        for target, results in by_target.items()
    }
    app_rps = mean([r.requests_per_s for r in by_target["app"]])
    ratio = app_rps / mean([r.requests_per_s for r in by_target["baseline"]])
    per_round = [
        a.requests_per_s / b.requests_per_s
        for a, b in zip(by_target["app"], by_target["baseline"], strict=True)
    ]

    rows: list[list[object]] = [
        [
            target,
            n,
            r.requests_per_s,
            r.latency_p50_ms,
            r.latency_p99_ms,
            _cpu_cell(r.server_cpu_ms_per_request),
            r.database_connections_opened,
            r.non_2xx_3xx,
        ]
        for n, target, r in runs
    ]
    for target, s in summary.items():
        rows.append(
            [
                target,
                "mean",
                s["requests_per_s"],
                s["latency_p50_ms"],
                s["latency_p99_ms"],
                _cpu_cell(s["server_cpu_ms_per_request"]),
                s["database_connections_opened"],
                s["non_2xx_3xx"],
            ]
        )
    loop, http = event_loop_and_parser()
    load_tool = (
        f"wrk -t{options.threads} -c{options.connections} -d{round(options.duration_s)}s, "
        f"warm-up {options.warmup_s:g} s each, {options.rounds} rounds (order flips each round)"
    )
    print(f"{load_tool}; uvicorn 1 worker, {loop} + {http}; body {answer['body_bytes']} bytes")
    columns = ["target", "round", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "new conns", "non-2xx"]
    print(table(columns, rows))
    headline = (
        f"app {summary['app']['requests_per_s']:,.0f} req/s vs raw asyncpg "
        f"{summary['baseline']['requests_per_s']:,.0f} req/s: ratio {ratio:.3f} "
        f"(rounds {min(per_round):.3f}..{max(per_round):.3f})"
    )
    rounds = ", ".join(f"{x:.3f}" for x in per_round)
    print(f"ratio app/baseline: {ratio:.3f}  (per round: {rounds})")
    app_cpu = _mean_cpu(by_target["app"])
    base_cpu = _mean_cpu(by_target["baseline"])
    cpu_ratio = app_cpu / base_cpu if app_cpu and base_cpu else None
    if cpu_ratio is not None:
        print(
            f"server CPU per request, app/baseline: {cpu_ratio:.2f}x ({app_cpu} vs {base_cpu} ms)"
        )
    if database_work:
        work = ", ".join(f"{k} {v:g}" for k, v in database_work.items())
        print(f"app database work per request: {work}; baseline: 1 statement, 1 round trip")
    if app_errors:
        print(f"warning: the app logged {app_errors} tracebacks under load")
    return {
        "headline": headline,
        "endpoint": f"GET {PATH}",
        "seed": {"sessions": SESSIONS, "messages_per_session": MESSAGES_PER_SESSION},
        "load_tool": load_tool,
        "server": {"workers": 1, "loop": loop, "http": http, "log_level": "warning"},
        "answer": answer,
        "summary": summary,
        "ratio_app_over_baseline": round(ratio, 4),
        "ratio_per_round": [round(x, 4) for x in per_round],
        "server_cpu_ratio_app_over_baseline": round(cpu_ratio, 3) if cpu_ratio else None,
        "runs": [{"round": n, "target": t, **r.as_dict()} for n, t, r in runs],
        "app_database_work_per_request": database_work,
        "app_tracebacks_logged": app_errors,
    }
