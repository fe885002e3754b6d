"""The thread of a long branch vs. a chronological page of the same size: `python -m bench thread`.

One session of 10,000 messages: a branch of 1,000 (the current one, root to current) and 9,000
other messages hanging off it (nine more children under each of its messages). Two statements,
both the app's own, each returning 1,000 messages with every column the API shows:

- `thread`: the active branch, walked up from the current message by primary key, each message
  with its `sibling_ids` (the (session_id, parent_id) index);
- `list`: the floor, `GET /api/messages/`'s statement reading 1,000 messages by the
  `(session_id, created_at, id)` index, in order.

Both run as the app runs them: compiled once, prepared, on an asyncpg connection outside any
transaction.

Each runs alone and back to back for the same time, in rounds whose order flips (ABBA), after
a warm-up; the figure is the ratio of median latencies, thread / list. The seed is plain SQL
under a random subject, deleted at the end.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import asyncpg

from app.persistence.repositories.base import Sql
from app.persistence.repositories.messages import _LIST, _THREAD
from bench import BenchOptions
from bench.support.database import bench_database
from bench.support.errors import BenchError
from bench.support.report import table

DESCRIPTION = "thread of a 1,000-message branch (10,000-message session) vs 1,000 by created_at"

BRANCH = 1_000
MESSAGES = 10_000
CHILDREN_PER_BRANCH_MESSAGE = (MESSAGES - BRANCH) // BRANCH


def _seed_statements(subject: str) -> list[str]:
    return [
        f"INSERT INTO users (auth0_id) VALUES ('{subject}')",
        "INSERT INTO sessions (user_id, title, message_count) "
        f"SELECT id, 'long branch', {MESSAGES} FROM users WHERE auth0_id = '{subject}'",
        # Text of a typical chat message's size; timestamps in id order.
        "INSERT INTO messages (session_id, user_id, role, content, tokens, created_at) "
        "SELECT s.id, s.user_id, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, "
        "'Message ' || g || ': ' || repeat('lorem ipsum ', 20), 30, "
        "now() - interval '1 day' + g * interval '1 second' "
        f"FROM sessions AS s JOIN users AS u ON u.id = s.user_id AND u.auth0_id = '{subject}', "
        f"generate_series(1, {MESSAGES}) AS g",
        f"""
        WITH ranked AS (
            SELECT m.id, row_number() OVER (ORDER BY m.id) AS n FROM messages AS m
            JOIN sessions AS s ON s.id = m.session_id
            JOIN users AS u ON u.id = s.user_id AND u.auth0_id = '{subject}'
        ), chain AS (SELECT id, n FROM ranked WHERE n <= {BRANCH})
        UPDATE messages AS m SET parent_id = CASE
            WHEN r.n <= {BRANCH} THEN (SELECT id FROM chain WHERE chain.n = r.n - 1)
            ELSE (SELECT id FROM chain WHERE chain.n = r.n % {BRANCH} + 1) END
        FROM ranked AS r WHERE m.id = r.id
        """,
        f"""
        UPDATE sessions AS s SET current_message_id = (
            SELECT id FROM messages WHERE session_id = s.id ORDER BY id OFFSET {BRANCH - 1} LIMIT 1)
        FROM users AS u WHERE u.id = s.user_id AND u.auth0_id = '{subject}'
        """,
    ]


Connection = asyncpg.Connection  # the stubs' generic is not subscriptable at run time
Targets = dict[str, tuple[Sql, dict[str, Any]]]


async def seed(conn: Connection, subject: str) -> dict[str, int]:
    """The rows (one transaction), fresh planner statistics, and the ids the statements need."""
    async with conn.transaction():
        for statement in _seed_statements(subject):
            await conn.execute(statement)
    await conn.execute("ANALYZE messages")
    ids = await conn.fetchrow(
        "SELECT s.id AS session_id, s.user_id FROM sessions AS s "
        "JOIN users AS u ON u.id = s.user_id WHERE u.auth0_id = $1",
        subject,
    )
    assert ids is not None
    return {"session_id": ids["session_id"], "user_id": ids["user_id"]}


async def fetch(conn: Connection, statement: Sql, params: dict[str, Any]) -> list[Any]:
    rows: list[Any] = await conn.fetch(statement.sql, *statement.args(params))
    return rows


def targets_for(ids: dict[str, int]) -> Targets:
    return {
        "thread": (_THREAD, {**ids, "before": None, "limit": BRANCH}),
        "list": (_LIST[False], {**ids, "skip": 0, "limit": BRANCH}),
    }


async def check(conn: Connection, targets: Targets) -> None:
    """Both read 1,000 messages; the thread's are the branch, each with its siblings."""
    for name, (statement, params) in targets.items():
        rows = await fetch(conn, statement, params)
        if len(rows) != BRANCH:
            raise BenchError(f"{name}: expected {BRANCH} messages, got {len(rows)}")
    thread = await fetch(conn, *targets["thread"])
    if thread[0]["parent_id"] is not None or any(
        row["parent_id"] != previous["id"] for previous, row in pairwise(thread)
    ):
        raise BenchError("thread: the rows are not one branch from the root")
    if len(thread[1]["sibling_ids"]) != CHILDREN_PER_BRANCH_MESSAGE + 1:
        raise BenchError(f"thread: expected {CHILDREN_PER_BRANCH_MESSAGE + 1} siblings")


async def _time(
    conn: Connection, statement: Sql, params: dict[str, Any], seconds: float
) -> list[float]:
    """Run the statement back to back for `seconds`; each latency in milliseconds."""
    latencies: list[float] = []
    clock: Callable[[], float] = time.perf_counter
    deadline = clock() + seconds
    while clock() < deadline or not latencies:
        started = clock()
        await fetch(conn, statement, params)
        latencies.append((clock() - started) * 1000)
    return latencies


def _p95(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
    )


async def run(options: BenchOptions) -> dict[str, Any]:
    subject = f"bench-thread-{uuid.uuid4().hex[:12]}"
    async with bench_database() as db:
        conn = await db.connect()
        try:
            targets = targets_for(await seed(conn, subject))
            await check(conn, targets)
            for statement, params in targets.values():
                await _time(conn, statement, params, options.warmup_s)
            runs: list[tuple[int, str, list[float]]] = []
            per_target = options.duration_s / 2
            for n in range(1, options.rounds + 1):
                order = ["thread", "list"] if n % 2 else ["list", "thread"]
                for name in order:
                    statement, params = targets[name]
                    runs.append((n, name, await _time(conn, statement, params, per_target)))
        finally:
            try:
                await conn.execute("DELETE FROM users WHERE auth0_id = $1", subject)
            finally:
                await conn.close()
    return _summarise(options, runs)


def _summarise(options: BenchOptions, runs: list[tuple[int, str, list[float]]]) -> dict[str, Any]:
    rows: list[list[object]] = []
    summary: dict[str, dict[str, float]] = {}
    for name in ("thread", "list"):
        for n, target, latencies in runs:
            if target == name:
                rows.append(
                    [name, n, len(latencies), statistics.median(latencies), _p95(latencies)]
                )
        every = [v for _, target, latencies in runs if target == name for v in latencies]
        summary[name] = {
            "queries": len(every),
            "median_ms": round(statistics.median(every), 3),
            "p95_ms": round(_p95(every), 3),
        }
        rows.append([name, "all", len(every), summary[name]["median_ms"], summary[name]["p95_ms"]])
    per_round = []
    for n in range(1, options.rounds + 1):
        medians = {t: statistics.median(taken) for m, t, taken in runs if m == n}
        per_round.append(medians["thread"] / medians["list"])
    ratio = summary["thread"]["median_ms"] / summary["list"]["median_ms"]
    print(
        f"{MESSAGES:,} messages in the session, {BRANCH:,} read by each statement; "
        f"warm-up {options.warmup_s:g} s each, {options.rounds} rounds of "
        f"{options.duration_s / 2:g} s per statement (order flips each round)"
    )
    print(table(["statement", "round", "queries", "median ms", "p95 ms"], rows))
    rounds = ", ".join(f"{x:.2f}" for x in per_round)
    print(f"ratio thread/list (median latency): {ratio:.2f}  (per round: {rounds})")
    headline = (
        f"thread of {BRANCH:,} {summary['thread']['median_ms']:.2f} ms vs {BRANCH:,} by "
        f"created_at {summary['list']['median_ms']:.2f} ms (medians): ratio {ratio:.2f} "
        f"(rounds {min(per_round):.2f}..{max(per_round):.2f})"
    )
    return {
        "headline": headline,
        "seed": {"messages": MESSAGES, "branch": BRANCH},
        "summary": summary,
        "ratio_thread_over_list": round(ratio, 3),
        "ratio_per_round": [round(x, 3) for x in per_round],
        "runs": [
            {
                "round": n,
                "statement": t,
                "queries": len(taken),
                "median_ms": statistics.median(taken),
            }
            for n, t, taken in runs
        ],
    }
