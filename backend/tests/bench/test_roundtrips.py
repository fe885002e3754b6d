"""The round-trip counter that `bench core` and the hot-path tests rely on must agree with what
asyncpg really sends: the reference is the protocol's own count of the queries it ran on the
connection (each a round trip; an empty `;` ping is one too, although PostgreSQL's statement
log does not show it). That count leaves out preparing a statement, a round trip of its own,
which the counter reports apart. Checked through SQLAlchemy's adapter (pings, BEGIN/COMMIT)
and through the unit of work, which runs statements on the driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.persistence.repositories.base import Sql
from app.persistence.unit_of_work import unit_of_work_factory
from bench.support.roundtrips import RoundTrips


@dataclass
class Counted:
    engine: AsyncEngine
    counter: RoundTrips
    _sent: Callable[[], int]
    _start: int = 0

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
            driver: Any = raw.driver_connection
        with RoundTrips().installed() as counter:
            c = Counted(engine, counter, lambda: int(driver._protocol.queries_count))
            c.reset()
            yield c
    finally:
        await engine.dispose()


async def test_sqlalchemy_with_pre_ping_and_a_transaction(migrated_url: str) -> None:
    async with counted(migrated_url, pool_pre_ping=True) as c:
        async with c.engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.execute(text("SELECT 2"))
        # ping (BEGIN; ";"; ROLLBACK) + BEGIN + 2 statements + COMMIT, and SELECT 2's prepare
        assert c.counter.round_trips == c.sent + 1, c.counter.counts
        assert c.counter.counts == {"simple": 4, "statements": 3, "prepares": 1}


async def test_the_unit_of_work_sends_one_round_trip_per_warm_statement(migrated_url: str) -> None:
    async with counted(migrated_url) as c:
        factory = unit_of_work_factory(c.engine)
        one = Sql("SELECT CAST(:n AS integer) AS n")
        async with factory() as uow:
            await uow.read(one, {"n": 1})  # prepares the statement on this connection
        c.reset()
        async with factory() as uow:
            await uow.read(one, {"n": 2})
            async with uow.atomic():
                await uow.read(one, {"n": 3})
        assert c.counter.round_trips == c.sent, c.counter.counts
        assert c.counter.counts == {"statements": 2, "simple": 2}  # + BEGIN, COMMIT
