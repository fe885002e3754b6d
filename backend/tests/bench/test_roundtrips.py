"""`bench core` counts the app's round trips from SQLAlchemy events; the count must follow what
asyncpg really sends, whatever the engine's settings (pre-ping or not, autocommit or not).

The reference is asyncpg's own count of the queries its protocol ran on the connection (each a
round trip once its prepared statement is cached; an empty `;` is one too, although PostgreSQL's
statement log does not show it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.support.roundtrips import RoundTrips


class Counted:
    def __init__(self, engine: AsyncEngine, counter: RoundTrips, sent: Callable[[], int]) -> None:
        self.engine = engine
        self.counter = counter
        self._sent = sent
        self._start = sent()

    def reset(self) -> None:
        self.counter.reset()
        self._start = self._sent()

    @property
    def sent(self) -> int:
        """Queries asyncpg ran on the (only) connection since the last reset."""
        return self._sent() - self._start


@asynccontextmanager
async def counted(url: str, **engine_options: Any) -> AsyncIterator[Counted]:
    engine = create_async_engine(url, pool_size=1, max_overflow=0, **engine_options)
    try:
        async with engine.connect() as conn:  # open the pooled connection: no ping on connect
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            driver = raw.dbapi_connection._connection  # type: ignore[union-attr]
        with RoundTrips(engine).installed() as counter:
            yield Counted(engine, counter, lambda: int(driver._protocol.queries_count))
    finally:
        await engine.dispose()


async def _two_statements_committed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
        await conn.execute(text("SELECT 2"))


async def _read_then_close(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:  # closing rolls back
        await conn.execute(text("SELECT 1"))


async def _empty_transaction(engine: AsyncEngine) -> None:
    async with engine.begin():
        pass


async def test_default_engine_pings_then_begins_lazily(migrated_url: str) -> None:
    async with counted(migrated_url, pool_pre_ping=True) as c:
        await _two_statements_committed(c.engine)
        # ping (BEGIN; ";"; ROLLBACK) + BEGIN + 2 statements + COMMIT
        assert c.counter.round_trips == c.sent == 7, c.counter.counts
        c.reset()
        await _read_then_close(c.engine)
        assert c.counter.round_trips == c.sent == 3 + 3, c.counter.counts
        c.reset()
        await _empty_transaction(c.engine)
        # Only the ping: a transaction with no statement never sends its BEGIN.
        assert c.counter.round_trips == c.sent == 3, c.counter.counts


async def test_without_pre_ping_there_are_no_pings(migrated_url: str) -> None:
    async with counted(migrated_url, pool_pre_ping=False) as c:
        await _two_statements_committed(c.engine)
        assert c.counter.counts["pings"] == 0
        assert c.counter.round_trips == c.sent == 4, c.counter.counts


async def test_autocommit_sends_no_transaction_control(migrated_url: str) -> None:
    async with counted(migrated_url, pool_pre_ping=True, isolation_level="AUTOCOMMIT") as c:
        await _two_statements_committed(c.engine)
        await _read_then_close(c.engine)
        assert c.counter.round_trips == c.sent, c.counter.counts
        # Two pings of one round trip each, three statements, no BEGIN/COMMIT/ROLLBACK.
        assert c.counter.per_request(1) == {
            "statements": 3,
            "begins": 0,
            "commits": 0,
            "rollbacks": 0,
            "pings": 2,
            "ping_round_trips": 2,
            "round_trips": 5,
        }
