"""The core API under load: the app against its floor and its ceiling, in the same run.

Four cases (issue #7), each driven by wrk with 32 connections by default:

- `list_sessions`   GET  /api/sessions/?limit=50             (50 sessions x 20 messages)
- `get_session`     GET  /api/sessions/{id}
- `create_message`  POST /api/messages/?session_id=N          (writers spread over 49 sessions)
- `list_messages`   GET  /api/messages/?session_id=N&limit=20

Three targets answer each case with the same JSON, as real uvicorn processes with one worker:
the app; the raw floor (`bench.baselines.sessions_raw`: bare ASGI, one asyncpg statement, no
auth); and the FastAPI ceiling (`bench.baselines.fastapi_ceiling`: FastAPI, pydantic, PyJWT auth,
one asyncpg statement). The order of the targets mirrors every round (A B C, then C B A, ...),
so a linear drift of the machine cancels out of the mean ratios app/raw and app/fastapi.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench import BenchOptions
from bench.support.database import BenchDatabase, bench_database
from bench.support.errors import BenchError
from bench.support.report import mean, table
from bench.support.roundtrips import RoundTrips
from bench.support.servers import Server, event_loop_and_parser, uvicorn_server
from bench.support.wrk import WrkRun, ensure_wrk, run_wrk

DESCRIPTION = (
    "sessions & messages API (list, get, create, list): app vs raw asyncpg floor vs FastAPI ceiling"
)

SESSIONS = 50
MESSAGES_PER_SESSION = 20
SESSIONS_LIMIT = 50
MESSAGES_LIMIT = 20
#: Sessions that receive the writes of `create_message`: one writer per conversation, as a chat.
WRITER_SESSIONS = 49
#: wrk connections unless --connections / BENCH_CONNECTIONS says otherwise (issue #7 used 32).
DEFAULT_CONNECTIONS = 32
#: The app's MAX_MESSAGES_PER_SESSION during the run: a 10 s write run must not hit the quota.
APP_MESSAGE_QUOTA = 10_000_000
#: Backends publish their statistics about once a second; wait that long before reading them.
STATS_FLUSH_S = 1.2
#: Requests whose database work is counted in-process per case (after one warm-up request).
COUNTED_REQUESTS = 20

TARGETS = ("app", "raw", "fastapi")
POST_BODY = {"role": "user", "content": "Bench message - café", "tokens": 0}
#: What a created message must answer, besides its id and timestamp.
MESSAGE_FIELDS = (
    "id",
    "session_id",
    "role",
    "content",
    "tokens",
    "created_at",
    "status",
    "input_tokens",
    "error",
    "parent_id",
    "tool_calls",
    "tool_call_id",
    "finish_reason",
    "model",
    "feedback",
)

SESSIONS_PATH = f"/api/sessions/?limit={SESSIONS_LIMIT}"
#: Kept for the tests: the session list every target must answer identically.
PATH = SESSIONS_PATH


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
            INSERT INTO messages (session_id, user_id, role, content, tokens, created_at)
            SELECT s.id, s.user_id, CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END,
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


@dataclass(frozen=True)
class Seeded:
    """A seeded user's sessions and the state `restore` brings them back to."""

    user_id: int
    session_ids: tuple[int, ...]
    counts: tuple[int, ...]
    updated_at: tuple[datetime, ...]
    last_message_id: int

    @property
    def probe(self) -> int:
        """The session read by `get_session` / `list_messages` and written by the checks."""
        return self.session_ids[0]

    @property
    def writers(self) -> tuple[int, ...]:
        return self.session_ids[1 : 1 + WRITER_SESSIONS]

    @classmethod
    async def load(cls, conn: asyncpg.Connection[Any], user_id: int) -> Seeded:
        rows = await conn.fetch(
            "SELECT id, message_count, updated_at FROM sessions WHERE user_id = $1 ORDER BY id",
            user_id,
        )
        last = await conn.fetchval(
            "SELECT max(m.id) FROM messages AS m JOIN sessions AS s ON s.id = m.session_id "
            "WHERE s.user_id = $1",
            user_id,
        )
        return cls(
            user_id,
            tuple(r["id"] for r in rows),
            tuple(r["message_count"] for r in rows),
            tuple(r["updated_at"] for r in rows),
            int(last),
        )

    async def restore(self, conn: asyncpg.Connection[Any]) -> None:
        """Undo the writes of a run, so every write run starts from the same tables."""
        await conn.execute(
            "DELETE FROM messages WHERE session_id = ANY($1::bigint[]) AND id > $2",
            list(self.session_ids),
            self.last_message_id,
        )
        await conn.execute(
            """
            UPDATE sessions AS s SET message_count = v.count, updated_at = v.at
            FROM unnest($1::bigint[], $2::int[], $3::timestamptz[]) AS v(id, count, at)
            WHERE s.id = v.id
            """,
            list(self.session_ids),
            list(self.counts),
            list(self.updated_at),
        )
        # Dead rows of the previous run would slow the next one down. (Not the tables' owner,
        # on a shared database: PostgreSQL skips them with a warning.)
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("VACUUM messages, sessions")


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    #: Request paths, used in turn (one for the reads; one per writer session for the POST).
    paths: tuple[str, ...]

    @property
    def endpoint(self) -> str:
        shown = self.paths[0]
        if len(self.paths) > 1:
            shown = shown.rsplit("=", 1)[0] + f"=<one of {len(self.paths)} sessions>"
        return f"{self.method} {shown}"

    @property
    def writes(self) -> bool:
        return self.method != "GET"

    def wrk_script(self) -> str:
        """Lua for wrk: POST to the paths in turn. Round robin over 49 sessions with 32
        connections keeps concurrent writes on different sessions (one writer per chat)."""
        if not self.writes:
            return ""
        paths = ", ".join(json.dumps(p) for p in self.paths)
        body = json.dumps(POST_BODY, ensure_ascii=False, separators=(",", ":"))
        return f"""
wrk.method = "{self.method}"
wrk.body = {json.dumps(body, ensure_ascii=False)}
wrk.headers["Content-Type"] = "application/json"
paths = {{{paths}}}
counter = 0
offset = 0
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7)
  threads = threads + 1
end
function request()
  counter = counter + 1
  return wrk.format(nil, paths[((counter + offset) % #paths) + 1])
end
"""


def build_cases(seeded: Seeded) -> list[Case]:
    probe = seeded.probe
    return [
        Case("list_sessions", "GET", (SESSIONS_PATH,)),
        Case("get_session", "GET", (f"/api/sessions/{probe}",)),
        Case(
            "create_message",
            "POST",
            tuple(f"/api/messages/?session_id={sid}" for sid in seeded.writers),
        ),
        Case(
            "list_messages", "GET", (f"/api/messages/?session_id={probe}&limit={MESSAGES_LIMIT}",)
        ),
    ]


def selected(cases: Sequence[Case]) -> list[Case]:
    """BENCH_CORE_CASES (comma-separated names) picks some cases; all by default."""
    wanted = [n.strip() for n in os.environ.get("BENCH_CORE_CASES", "").split(",") if n.strip()]
    if not wanted:
        return list(cases)
    unknown = set(wanted) - {c.name for c in cases}
    if unknown:
        raise BenchError(
            f"BENCH_CORE_CASES: unknown {sorted(unknown)}; use {[c.name for c in cases]}"
        )
    return [c for c in cases if c.name in wanted]


# --- checks before load ----------------------------------------------------------------------


async def check_same_answers(
    case: Case, servers: dict[str, Server], auth: dict[str, str], seeded: Seeded
) -> dict[str, Any]:
    """Every target answers the case as the app does (and 404 alike where the route can)."""
    async with httpx.AsyncClient(timeout=10, headers=auth) as client:
        if case.writes:
            return await _check_post(client, case, servers, seeded)
        bodies: dict[str, bytes] = {}
        for name, server in servers.items():
            response = await client.get(server.url + case.paths[0])
            if response.status_code != 200:
                raise BenchError(
                    f"{case.name}: {name} answered {response.status_code}: {response.text[:300]}"
                )
            bodies[name] = response.content
        _check_payload(case, json.loads(bodies["app"]), seeded)
        for name, body in bodies.items():
            if json.loads(body) != json.loads(bodies["app"]):
                raise BenchError(f"{case.name}: {name}'s JSON differs from the app's")
        missing = max(seeded.session_ids) + 1_000_000
        not_found = {
            "get_session": f"/api/sessions/{missing}",
            "list_messages": f"/api/messages/?session_id={missing}&limit={MESSAGES_LIMIT}",
        }.get(case.name)
        if not_found is not None:
            await _check_not_found(client, case, servers, not_found)
    return {
        "status": 200,
        "body_bytes": len(bodies["app"]),
        "byte_identical": {name: body == bodies["app"] for name, body in bodies.items()},
    }


def _check_payload(case: Case, payload: Any, seeded: Seeded) -> None:
    if case.name == "list_sessions":
        ok = isinstance(payload, list) and len(payload) == SESSIONS_LIMIT
        ok = ok and all(item["message_count"] == MESSAGES_PER_SESSION for item in payload)
    elif case.name == "get_session":
        ok = isinstance(payload, dict) and payload.get("id") == seeded.probe
    else:
        ok = isinstance(payload, list) and len(payload) == MESSAGES_LIMIT
        ok = ok and [m["content"] for m in payload] == [
            f"Message {i} of session {seeded.probe}" for i in range(1, MESSAGES_LIMIT + 1)
        ]
    if not ok:
        raise BenchError(f"{case.name}: the app's answer is not the seeded data: {payload!r:.300}")


def _without_request_id(document: Any) -> Any:
    """The app's problem documents carry the request's id; the baselines' do not."""
    if isinstance(document, dict):
        return {k: v for k, v in document.items() if k != "request_id"}
    return document


async def _check_not_found(
    client: httpx.AsyncClient, case: Case, servers: dict[str, Server], path: str
) -> None:
    answers = {}
    for name, server in servers.items():
        response = await client.get(server.url + path)
        answers[name] = (
            response.status_code,
            response.headers.get("content-type"),
            _without_request_id(response.json()) if response.content else None,
        )
    if answers["app"][0] != 404 or any(a != answers["app"] for a in answers.values()):
        raise BenchError(f"{case.name}: 404 answers differ: {answers}")


async def _check_post(
    client: httpx.AsyncClient, case: Case, servers: dict[str, Server], seeded: Seeded
) -> dict[str, Any]:
    """One POST per target to the probe session: 201, the same fields in the same order, the
    same values but for the id, the time and the parent (each goes under the one before); the
    session counted it, moved to that time and points at it."""
    path = f"/api/messages/?session_id={seeded.probe}"
    created: dict[str, dict[str, Any]] = {}
    count = seeded.counts[0]
    for name, server in servers.items():
        before = (await client.get(f"{server.url}/api/sessions/{seeded.probe}")).json()
        response = await client.post(server.url + path, json=POST_BODY)
        if response.status_code != 201:
            raise BenchError(
                f"{case.name}: {name} answered {response.status_code}: {response.text[:300]}"
            )
        message = response.json()
        if tuple(message) != MESSAGE_FIELDS:
            raise BenchError(f"{case.name}: {name} answered the fields {tuple(message)}")
        session = (await client.get(f"{server.url}/api/sessions/{seeded.probe}")).json()
        count += 1
        if (
            session["message_count"] != count
            or session["updated_at"] != message["created_at"]
            or session["current_message_id"] != message["id"]
            or message["parent_id"] != before["current_message_id"]
        ):
            raise BenchError(
                f"{case.name}: {name} did not move the session with the message: {session}"
            )
        created[name] = message
    expected = {
        "session_id": seeded.probe,
        **POST_BODY,
        "status": "completed",
        "input_tokens": 0,
        "error": None,
        "tool_calls": None,
        "tool_call_id": None,
        "finish_reason": None,
        "model": None,
        "feedback": None,
    }
    for name, message in created.items():
        got = {k: v for k, v in message.items() if k not in {"id", "created_at", "parent_id"}}
        if got != expected:
            raise BenchError(f"{case.name}: {name} answered {got}, expected {expected}")
    missing = max(seeded.session_ids) + 1_000_000
    answers = {}
    for name, server in servers.items():
        response = await client.post(
            f"{server.url}/api/messages/?session_id={missing}", json=POST_BODY
        )
        answers[name] = (response.status_code, _without_request_id(response.json()))
    if answers["app"][0] != 404 or any(a != answers["app"] for a in answers.values()):
        raise BenchError(f"{case.name}: 404 answers differ: {answers}")
    return {"status": 201, "fields": list(MESSAGE_FIELDS), "same_values_but_id_and_time": True}


# --- the app's database work, counted in-process ---------------------------------------------


async def count_database_work(
    db: BenchDatabase, secret: str, subject: str, cases: Sequence[Case]
) -> dict[str, dict[str, float]]:
    """Per request and case: statements, prepares and plain commands (BEGIN, COMMIT, a ping)
    on the wire.

    The app's own engine and settings behind httpx's ASGITransport, counted at the driver by
    `bench.support.roundtrips.RoundTrips`. One warm-up request per case first (provisioning,
    prepared statements), then COUNTED_REQUESTS.
    """
    from app.core.database import create_engine
    from app.core.security import LocalTokens
    from app.core.settings import Settings
    from app.main import create_app

    settings = Settings(
        _env_file=None,
        database_url=db.url,
        auth_secret=secret,
        max_messages_per_session=APP_MESSAGE_QUOTA,
    )
    engine = create_engine(settings)
    counter = RoundTrips()
    headers = {"Authorization": f"Bearer {LocalTokens(settings).mint(subject, ttl_s=600)}"}
    transport = httpx.ASGITransport(app=create_app(settings, engine=engine))
    work: dict[str, dict[str, float]] = {}
    try:
        with counter.installed():
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=headers
            ) as client:
                for case in cases:
                    for i in range(COUNTED_REQUESTS + 1):
                        if i == 1:
                            counter.reset()
                        path = case.paths[i % len(case.paths)]
                        body = POST_BODY if case.writes else None
                        response = await client.request(case.method, path, json=body)
                        if response.status_code not in (200, 201):
                            raise BenchError(
                                f"counting {case.name}: {response.status_code} {response.text}"
                            )
                    work[case.name] = counter.per_request(COUNTED_REQUESTS)
    finally:
        await engine.dispose()
    return work


# --- load ------------------------------------------------------------------------------------


def _check_clean(label: str, run: WrkRun) -> None:
    if run.non_2xx_3xx or run.socket_errors or not run.requests:
        raise BenchError(
            f"{label}: {run.requests} requests, {run.non_2xx_3xx} non-2xx/3xx, "
            f"{run.socket_errors} socket errors: the figures would not be comparable"
        )


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


async def run(options: BenchOptions) -> dict[str, Any]:
    ensure_wrk()
    subject = f"bench-{uuid.uuid4().hex[:12]}"
    secret = secrets.token_urlsafe(48)
    async with bench_database() as db:
        conn = await db.connect()
        users: list[int] = []
        try:
            users.append(await seed(conn, subject))
            users.append(await seed(conn, f"{subject}-counted"))
            seeded = await Seeded.load(conn, users[0])
            counted = await Seeded.load(conn, users[1])
            return await _measure(options, db, conn, subject, secret, seeded, counted)
        finally:
            if users:
                await conn.execute("DELETE FROM users WHERE id = ANY($1::bigint[])", users)
            await conn.close()


async def _measure(
    options: BenchOptions,
    db: BenchDatabase,
    conn: asyncpg.Connection[Any],
    subject: str,
    secret: str,
    seeded: Seeded,
    counted: Seeded,
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
        metrics_public=True,  # nothing scrapes it here
        max_messages_per_session=APP_MESSAGE_QUOTA,
    )
    connect = json.dumps(db.connect_kwargs())
    pool_size = str(settings.db_pool_size)
    # Pinned in the child's environment, which outranks any .env file it would read.
    envs = {
        "app": {
            "ENVIRONMENT": settings.environment,
            "ALLOW_LOCAL_AUTH_IN_PRODUCTION": "true",
            "METRICS_PUBLIC": "true",
            "LOG_LEVEL": settings.log_level,
            "DATABASE_URL": db.url,
            "AUTH_SECRET": secret,
            "AUTH_ISSUER": settings.auth_issuer,
            "AUTH_AUDIENCE": settings.auth_audience,
            "DB_POOL_SIZE": pool_size,
            "DB_MAX_OVERFLOW": str(settings.db_max_overflow),
            "MAX_MESSAGES_PER_SESSION": str(APP_MESSAGE_QUOTA),
        },
        "raw": {
            "BENCH_PG_CONNECT": connect,
            "BENCH_USER_ID": str(seeded.user_id),
            "BENCH_POOL_SIZE": pool_size,
        },
        "fastapi": {
            "BENCH_PG_CONNECT": connect,
            "BENCH_POOL_SIZE": pool_size,
            "BENCH_AUTH_SECRET": secret,
            "BENCH_AUTH_ISSUER": settings.auth_issuer,
            "BENCH_AUTH_AUDIENCE": settings.auth_audience,
            "BENCH_AUTH_LEEWAY_S": str(settings.auth_leeway_s),
        },
    }
    token = LocalTokens(settings).mint(subject, ttl_s=3600)
    auth = {"Authorization": f"Bearer {token}"}
    cases = selected(build_cases(seeded))
    counted_cases = {c.name: c for c in build_cases(counted)}
    connections = options.connections_or(DEFAULT_CONNECTIONS)

    database_work = await count_database_work(
        db, secret, f"{subject}-counted", [counted_cases[c.name] for c in cases]
    )

    async with (
        uvicorn_server("app", "app.main:create_app", env=envs["app"], ready_path="/health") as app,
        uvicorn_server(
            "raw", "bench.baselines.sessions_raw:create_app", env=envs["raw"], ready_path=PATH
        ) as raw,
        uvicorn_server(
            "fastapi",
            "bench.baselines.fastapi_ceiling:create_app",
            env=envs["fastapi"],
            ready_path=PATH,
            ready_headers=auth,
        ) as ceiling,
    ):
        servers = {"app": app, "raw": raw, "fastapi": ceiling}

        async def load(case: Case, target: str, seconds: float) -> WrkRun:
            if case.writes:
                await seeded.restore(conn)
            server = servers[target]
            sessions_before = await _database_sessions(conn)
            cpu_before = server.cpu_seconds()
            result = await run_wrk(
                server.url + case.paths[0],
                duration_s=seconds,
                connections=connections,
                threads=options.threads,
                headers=auth,
                script=case.wrk_script(),
            )
            cpu_after = server.cpu_seconds()
            _check_clean(f"{case.name} {target}", result)
            if cpu_before is not None and cpu_after is not None:
                cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
                result = replace(result, server_cpu_ms_per_request=round(cpu_ms, 3))
            await asyncio.sleep(STATS_FLUSH_S)
            sessions_after = await _database_sessions(conn)
            if sessions_before is None or sessions_after is None:
                return result
            return replace(result, database_connections_opened=sessions_after - sessions_before)

        results: dict[str, dict[str, Any]] = {}
        for case in cases:
            print(f"-- {case.name}: {case.endpoint}", flush=True)
            answer = await check_same_answers(case, servers, auth, seeded)
            if case.writes:
                await seeded.restore(conn)
            if options.warmup_s > 0:
                for target in TARGETS:
                    await load(case, target, options.warmup_s)
            runs: list[tuple[int, str, WrkRun]] = []
            for round_no in range(options.rounds):
                order = TARGETS if round_no % 2 == 0 else TARGETS[::-1]
                for target in order:
                    runs.append(
                        (round_no + 1, target, await load(case, target, options.duration_s))
                    )
            if case.writes:
                await seeded.restore(conn)
            results[case.name] = _summarise_case(case, runs, answer, database_work[case.name])
        tracebacks = {name: _logged_errors(server) for name, server in servers.items()}

    return _report(options, connections, results, tracebacks)


# --- figures ---------------------------------------------------------------------------------


def _mean_cpu(results: list[WrkRun]) -> float | None:
    values = [r.server_cpu_ms_per_request for r in results]
    known = [v for v in values if v is not None]
    return round(mean(known), 3) if known and len(known) == len(values) else None


def _cpu_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _summarise_case(
    case: Case,
    runs: list[tuple[int, str, WrkRun]],
    answer: dict[str, Any],
    database_work: dict[str, float],
) -> dict[str, Any]:
    by_target: dict[str, list[WrkRun]] = {t: [] for t in TARGETS}
    for _, target, result in runs:
        by_target[target].append(result)
    summary: dict[str, dict[str, Any]] = {
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
    ratios: dict[str, Any] = {}
    for base in ("raw", "fastapi"):
        rps = mean([r.requests_per_s for r in by_target["app"]]) / mean(
            [r.requests_per_s for r in by_target[base]]
        )
        per_round = [
            a.requests_per_s / b.requests_per_s
            for a, b in zip(by_target["app"], by_target[base], strict=True)
        ]
        app_cpu = summary["app"]["server_cpu_ms_per_request"]
        base_cpu = summary[base]["server_cpu_ms_per_request"]
        ratios[f"app_over_{base}"] = {
            "requests_per_s": round(rps, 4),
            "per_round": [round(x, 4) for x in per_round],
            "server_cpu_per_request": round(app_cpu / base_cpu, 3)
            if app_cpu and base_cpu
            else None,
        }

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
    columns = ["target", "round", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "new conns", "non-2xx"]
    print(table(columns, rows))
    for base in ("raw", "fastapi"):
        r = ratios[f"app_over_{base}"]
        rounds = ", ".join(f"{x:.3f}" for x in r["per_round"])
        cpu = r["server_cpu_per_request"]
        cpu_text = f"; server CPU per request app/{base} {cpu:.2f}x" if cpu else ""
        print(f"app/{base}: req/s {r['requests_per_s']:.3f} (per round: {rounds}){cpu_text}")
    work = ", ".join(f"{k} {v:g}" for k, v in database_work.items())
    print(f"app database work per request: {work}; raw and fastapi: 1 statement, 1 round trip")
    return {
        "endpoint": case.endpoint,
        "answer": answer,
        "summary": summary,
        "ratios": ratios,
        "app_database_work_per_request": database_work,
        "runs": [{"round": n, "target": t, **r.as_dict()} for n, t, r in runs],
    }


def _report(
    options: BenchOptions,
    connections: int,
    results: dict[str, dict[str, Any]],
    tracebacks: dict[str, int],
) -> dict[str, Any]:
    loop, http = event_loop_and_parser()
    load_tool = (
        f"wrk -t{options.threads} -c{connections} -d{round(options.duration_s)}s, "
        f"warm-up {options.warmup_s:g} s per target, {options.rounds} rounds per case (target "
        "order mirrors each round)"
    )
    print(f"\n{load_tool}; uvicorn 1 worker each, {loop} + {http}")
    rows: list[list[object]] = []
    for name, r in results.items():
        s, ratios = r["summary"], r["ratios"]
        rows.append(
            [
                name,
                s["app"]["requests_per_s"],
                s["raw"]["requests_per_s"],
                s["fastapi"]["requests_per_s"],
                f"{ratios['app_over_raw']['requests_per_s']:.3f}",
                f"{ratios['app_over_fastapi']['requests_per_s']:.3f}",
                " / ".join(_cpu_cell(s[t]["server_cpu_ms_per_request"]) for t in TARGETS),
                f"{r['app_database_work_per_request']['round_trips']:g}",
            ]
        )
    columns = [
        "case",
        "app req/s",
        "raw req/s",
        "fastapi req/s",
        "app/raw",
        "app/fastapi",
        "CPU ms/req app/raw/fastapi",
        "app round trips",
    ]
    print(table(columns, rows))
    for name, count in tracebacks.items():
        if count:
            print(f"warning: {name} logged {count} tracebacks under load")
    ceiling = ", ".join(
        f"{name} {r['ratios']['app_over_fastapi']['requests_per_s']:.2f}"
        for name, r in results.items()
    )
    floor = ", ".join(
        f"{r['ratios']['app_over_raw']['requests_per_s']:.2f}" for r in results.values()
    )
    headline = f"req/s app/fastapi: {ceiling} (app/raw: {floor})"
    return {
        "headline": headline,
        "load_tool": load_tool,
        "connections": connections,
        "server": {"workers": 1, "loop": loop, "http": http, "log_level": "warning"},
        "seed": {
            "sessions": SESSIONS,
            "messages_per_session": MESSAGES_PER_SESSION,
            "writer_sessions": WRITER_SESSIONS,
            "app_max_messages_per_session": APP_MESSAGE_QUOTA,
        },
        "cases": results,
        "tracebacks_logged": tracebacks,
    }
