"""Full-text search against a plain `ILIKE` scan of the same rows: `python -m bench search`.

One user owns 100,000 messages (1,000 sessions of 100) among 1,000,000 messages of 1,000 other
users, generated in SQL (`generate_series`) from a vocabulary of everyday words drawn with a
skewed distribution (a few words in most messages, most words in few) plus a reference code per
message (`ref12345`, in about ten messages each): queries with common, selective and very
selective terms. 20 typical queries (single words, two and three words, phrases, `or`, `-word`,
codes) run through the app's own statement (`GET /api/search`'s, compiled once and prepared on
an asyncpg connection, as a warm request runs it: ranked, snippets made, first page of 20) and
through the floor most chat backends ship: the same user's messages `ILIKE '%word%'` (each
positive word; `NOT ILIKE` for a negated one), newest first, 20 rows, by the `(user_id,
created_at)` index. Both are checked first: every app hit is the user's and holds the words.

Rounds alternate the order (app first, then ILIKE first); the figures are the median and p99 of
all the queries' latencies per target, and their ratio. The seed runs on a throw-away embedded
server (BENCH_DATABASE_URL to use another) and takes one to two minutes: there, secondary
indexes are dropped while rows load and built again after (their own definitions), and the
foreign-key checks are skipped for the generated (consistent) rows.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.domain.search import TAG_OPEN_STANDIN, Markers
from app.persistence.repositories.search import _SEARCH, _options
from bench import BenchOptions
from bench.support.database import bench_database
from bench.support.errors import BenchError
from bench.support.report import table

DESCRIPTION = "full-text search of a 100,000-message user among 1.1M vs ILIKE, 20 queries"

USER_SESSIONS = 1_000
OTHER_USERS = 1_000
OTHER_SESSIONS_PER_USER = 10
MESSAGES_PER_SESSION = 100
SENTENCES = 50_000
PAGE = 20

#: Everyday chat words, most common first: the draw favours the head of the list.
_WORDS = """
the you and for with this that what how can please help thanks code error time work day need
want make data file list question answer python function message example today test week
email meeting project team report plan idea travel trip lisbon porto madrid paris berlin
london coffee lunch dinner recipe bread cake garden music guitar piano movie book river
mountain beach train flight hotel budget invoice deadline chart memory thread socket kernel
compile deploy docker cluster backup restore password calendar birthday weather sunny rainy
winter summer autumn spring doctor pharmacy insurance salary mortgage landlord contract
lawyer bill receipt refund shipping package delivery warranty battery charger laptop
keyboard monitor printer router wifi bluetooth headphones camera lens tripod drone bicycle
helmet marathon yoga swimming tennis football basketball chess puzzle crossword sudoku
painting sketch pottery knitting sewing origami gardening tomato basil pepper garlic onion
lemon olive cheese butter yogurt cereal granola pancake waffle omelette sandwich burrito
lasagna risotto paella sushi ramen dumpling curry falafel hummus kebab taco nachos salsa
guacamole brownie cookie muffin croissant bagel pretzel espresso cappuccino latte matcha
smoothie lemonade kombucha whisky bourbon vermouth prosecco riesling merlot malbec glacier
volcano canyon waterfall lagoon archipelago savanna tundra rainforest oasis fjord astronomy
telescope nebula galaxy comet asteroid eclipse equinox solstice aurora meteor philosophy
ethics logic epistemology metaphysics aesthetics semantics syntax phonology quaternion
eigenvalue manifold topology homology tensor lagrangian hamiltonian fourier kubernetes
terraform ansible prometheus grafana kafka rabbitmq elasticsearch postgres mitochondria
ribosome enzyme photosynthesis chlorophyll neuron synapse hormone antibody baroque
renaissance impressionism cubism surrealism minimalism brutalism artdeco bauhaus
"""
VOCABULARY = _WORDS.split()


@dataclass(frozen=True)
class Query:
    #: As a client types it into the search box.
    text: str
    #: The ILIKE floor: words every row holds, words none holds, or (any) words one holds.
    all_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()


def _w(rank: int) -> str:
    return VOCABULARY[rank]


QUERIES = [
    Query(_w(5), all_of=(_w(5),)),
    Query(_w(12), all_of=(_w(12),)),
    Query(_w(40), all_of=(_w(40),)),
    Query(_w(90), all_of=(_w(90),)),
    Query(_w(150), all_of=(_w(150),)),
    Query(_w(200), all_of=(_w(200),)),
    Query(_w(235), all_of=(_w(235),)),
    Query(_w(252), all_of=(_w(252),)),
    Query(f"{_w(3)} {_w(9)}", all_of=(_w(3), _w(9))),
    Query(f"{_w(20)} {_w(160)}", all_of=(_w(20), _w(160))),
    Query(f"{_w(60)} {_w(70)} {_w(80)}", all_of=(_w(60), _w(70), _w(80))),
    Query(f"{_w(215)} {_w(225)}", all_of=(_w(215), _w(225))),
    Query(f'"{_w(0)} {_w(1)}"', all_of=(f"{_w(0)} {_w(1)}",)),
    Query(f'"{_w(30)} {_w(31)}"', all_of=(f"{_w(30)} {_w(31)}",)),
    Query(f"{_w(100)} or {_w(180)}", any_of=(_w(100), _w(180))),
    Query(f"{_w(205)} or {_w(240)} or {_w(250)}", any_of=(_w(205), _w(240), _w(250))),
    Query(f"{_w(50)} -{_w(2)}", all_of=(_w(50),), none_of=(_w(2),)),
    Query(f"{_w(7)} -{_w(8)} -{_w(10)}", all_of=(_w(7),), none_of=(_w(8), _w(10))),
    Query("ref12345", all_of=("ref12345",)),
    Query(f"ref777 {_w(4)}", all_of=("ref777", _w(4))),
]

_ILIKE_ALL = (
    "SELECT id, session_id, created_at, content FROM messages "
    "WHERE user_id = $1 AND content ILIKE ALL($2::text[]) AND NOT content ILIKE ANY($3::text[]) "
    f"ORDER BY created_at DESC LIMIT {PAGE}"
)
_ILIKE_ANY = (
    "SELECT id, session_id, created_at, content FROM messages "
    "WHERE user_id = $1 AND content ILIKE ANY($2::text[]) AND NOT content ILIKE ANY($3::text[]) "
    f"ORDER BY created_at DESC LIMIT {PAGE}"
)

Connection = asyncpg.Connection  # the stubs' generic is not subscriptable at run time

#: The secondary indexes of the loaded tables (not those behind constraints): dropped while the
#: rows load on a throw-away server, then built again from their own definitions.
_LOADED_INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index AS i
WHERE i.indrelid IN ('messages'::regclass, 'sessions'::regclass) AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
"""


def _seed_statements(subject: str) -> list[str]:
    """Sentences of 8..16 words drawn from the vocabulary (skewed to its head), then users,
    sessions and messages, each message a sentence and its own reference code."""
    words = "ARRAY[" + ", ".join(f"'{w}'" for w in VOCABULARY) + "]"
    total_sessions = USER_SESSIONS + OTHER_USERS * OTHER_SESSIONS_PER_USER
    return [
        f"""
        CREATE TEMP TABLE bench_sentences AS
        SELECT n, (SELECT string_agg(
                       ({words})[1 + floor({len(VOCABULARY)} * power(random(), 3))::int
                                 + 0 * w], ' ')
                   FROM generate_series(1, 8 + n % 9) AS w) AS text
        FROM generate_series(0, {SENTENCES - 1}) AS n
        """,
        f"""
        INSERT INTO users (auth0_id, session_count)
        SELECT '{subject}', {USER_SESSIONS}
        UNION ALL
        SELECT '{subject}-other-' || g, {OTHER_SESSIONS_PER_USER}
        FROM generate_series(1, {OTHER_USERS}) AS g
        """,
        f"""
        INSERT INTO sessions (user_id, title, message_count, created_at, updated_at)
        SELECT u.id, 'Chat ' || g || ' ' || ({words})[1 + g % {len(VOCABULARY)}],
               {MESSAGES_PER_SESSION}, now() - interval '1 year', now() - g * interval '1 minute'
        FROM users AS u,
             generate_series(1, CASE WHEN u.auth0_id = '{subject}' THEN {USER_SESSIONS}
                                     ELSE {OTHER_SESSIONS_PER_USER} END) AS g
        WHERE u.auth0_id LIKE '{subject}%'
        """,
        f"""
        INSERT INTO messages (session_id, user_id, role, content, created_at)
        SELECT s.id, s.user_id, CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END,
               b.text || ' ref' || ((s.id * {MESSAGES_PER_SESSION} + m) * 7919 % 100000),
               s.created_at + (s.id % {total_sessions}) * interval '1 second'
                   + m * interval '1 minute'
        FROM sessions AS s
        JOIN users AS u ON u.id = s.user_id AND u.auth0_id LIKE '{subject}%'
        CROSS JOIN generate_series(1, {MESSAGES_PER_SESSION}) AS m
        JOIN bench_sentences AS b ON b.n = (s.id * 131 + m * 7907) % {SENTENCES}
        """,
        "DROP TABLE bench_sentences",
    ]


async def seed(conn: Connection, subject: str, *, bulk: bool) -> int:
    """Load the rows, then fresh planner statistics; returns the user's id. `bulk` (a server of
    our own): secondary indexes are dropped during the load and built again after, and the
    foreign-key triggers skip their per-row checks (the rows are generated consistent)."""
    indexes = await conn.fetch(_LOADED_INDEXES) if bulk else []
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    try:
        async with conn.transaction():
            if bulk:
                await conn.execute("SET LOCAL session_replication_role = replica")
            for statement in _seed_statements(subject):
                await conn.execute(statement)
    finally:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for index in indexes:
            await conn.execute(index["definition"])
    await conn.execute("VACUUM ANALYZE messages")
    await conn.execute("VACUUM ANALYZE sessions")
    user_id: int = await conn.fetchval("SELECT id FROM users WHERE auth0_id = $1", subject)
    return user_id


def _app_target(user_id: int, query: Query) -> tuple[str, list[Any]]:
    markers = Markers.fresh()
    statement = _SEARCH[False]
    params = {
        "user_id": user_id,
        "q": query.text,
        "config": "simple",
        "limit": PAGE,
        "options": _options(markers, whole=False),
        "title_options": _options(markers, whole=True),
        "tag_open": TAG_OPEN_STANDIN,
    }
    return statement.sql, statement.args(params)


def _ilike_target(user_id: int, query: Query) -> tuple[str, list[Any]]:
    patterns = [f"%{word}%" for word in (query.any_of or query.all_of)]
    excluded = [f"%{word}%" for word in query.none_of]
    return (_ILIKE_ANY if query.any_of else _ILIKE_ALL), [user_id, patterns, excluded]


async def check(conn: Connection, user_id: int) -> dict[str, list[int]]:
    """Hits per query for both targets; every app hit is the user's and holds the words."""
    hits: dict[str, list[int]] = {"app": [], "ilike": []}
    for query in QUERIES:
        sql, args = _app_target(user_id, query)
        rows = await conn.fetch(sql, *args)
        for row in rows:
            if row["kind"] == "m":
                owner = await conn.fetchval("SELECT user_id FROM messages WHERE id = $1", row["id"])
                if owner != user_id:
                    raise BenchError(f"{query.text!r}: a hit of another user ({row['id']})")
        hits["app"].append(len(rows))
        sql, args = _ilike_target(user_id, query)
        hits["ilike"].append(len(await conn.fetch(sql, *args)))
    if sum(hits["app"]) == 0:
        raise BenchError("the app's search found nothing at all: the seed is wrong")
    return hits


async def _timed(conn: Connection, sql: str, args: list[Any]) -> float:
    started = time.perf_counter()
    await conn.fetch(sql, *args)
    return (time.perf_counter() - started) * 1000


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[-1]


async def run(options: BenchOptions) -> dict[str, Any]:
    subject = f"bench-search-{uuid.uuid4().hex[:12]}"
    latencies: dict[str, dict[str, list[float]]] = {
        "app": {q.text: [] for q in QUERIES},
        "ilike": {q.text: [] for q in QUERIES},
    }
    async with bench_database(use_database_url=False) as db:
        conn = await db.connect()
        try:
            began = time.perf_counter()
            user_id = await seed(conn, subject, bulk=db.embedded)
            seed_s = time.perf_counter() - began
            hits = await check(conn, user_id)
            targets = {"app": _app_target, "ilike": _ilike_target}
            for query in QUERIES:  # warm-up: one of each
                for make in targets.values():
                    await _timed(conn, *make(user_id, query))
            repeats = max(3, options.rounds * 3)
            for n in range(repeats):
                order = ["app", "ilike"] if n % 2 == 0 else ["ilike", "app"]
                for query in QUERIES:
                    for name in order:
                        sql, args = targets[name](user_id, query)
                        latencies[name][query.text].append(await _timed(conn, sql, args))
        finally:
            try:
                await conn.execute("DELETE FROM users WHERE auth0_id LIKE $1", f"{subject}%")
            finally:
                await conn.close()
    return _summarise(latencies, hits, seed_s)


_COLUMNS = ("query", "app_hits", "app_median_ms", "ilike_hits", "ilike_median_ms")


def _summarise(
    latencies: dict[str, dict[str, list[float]]], hits: dict[str, list[int]], seed_s: float
) -> dict[str, Any]:
    rows: list[list[object]] = []
    for index, query in enumerate(QUERIES):
        app = statistics.median(latencies["app"][query.text])
        ilike = statistics.median(latencies["ilike"][query.text])
        rows.append([query.text, hits["app"][index], app, hits["ilike"][index], ilike, ilike / app])
    summary = {}
    for name in ("app", "ilike"):
        every = [v for values in latencies[name].values() for v in values]
        summary[name] = {
            "queries": len(every),
            "median_ms": round(statistics.median(every), 3),
            "p99_ms": round(_p99(every), 3),
        }
    ratio = summary["ilike"]["median_ms"] / summary["app"]["median_ms"]
    ratio_p99 = summary["ilike"]["p99_ms"] / summary["app"]["p99_ms"]
    total = USER_SESSIONS * MESSAGES_PER_SESSION
    others = OTHER_USERS * OTHER_SESSIONS_PER_USER * MESSAGES_PER_SESSION
    print(
        f"{total:,} messages of the user among {others:,} of {OTHER_USERS:,} others "
        f"(seeded in {seed_s:.0f} s); {len(QUERIES)} queries, first page of {PAGE}"
    )
    print(
        table(
            ["query", "app hits", "app median ms", "ilike hits", "ilike median ms", "ilike/app"],
            rows,
        )
    )
    print(
        f"app (full-text search): median {summary['app']['median_ms']:.2f} ms, "
        f"p99 {summary['app']['p99_ms']:.2f} ms; ILIKE scan: median "
        f"{summary['ilike']['median_ms']:.2f} ms, p99 {summary['ilike']['p99_ms']:.2f} ms"
    )
    print(f"ratio ILIKE/app: median {ratio:.2f}, p99 {ratio_p99:.2f}")
    headline = (
        f"search median {summary['app']['median_ms']:.2f} ms / p99 "
        f"{summary['app']['p99_ms']:.2f} ms vs ILIKE {summary['ilike']['median_ms']:.2f} / "
        f"{summary['ilike']['p99_ms']:.2f} ms: ILIKE/app {ratio:.2f} (median), "
        f"{ratio_p99:.2f} (p99)"
    )
    return {
        "headline": headline,
        "seed": {"user_messages": total, "other_messages": others, "seconds": round(seed_s, 1)},
        "summary": summary,
        "ratio_ilike_over_app_median": round(ratio, 3),
        "ratio_ilike_over_app_p99": round(ratio_p99, 3),
        "queries": [dict(zip(_COLUMNS, row, strict=False)) for row in rows],
    }
