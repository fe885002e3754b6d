"""The clean-tables fixture's TRUNCATE survives a deadlock with a statement still running from
the previous test (a server ending its replies): it is run again, not the test failed."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.database import TABLES, truncate


async def _deadlocks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found: int = await conn.scalar(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )
    return found


async def test_a_truncate_that_loses_a_deadlock_runs_again(engine: AsyncEngine) -> None:
    first, last = TABLES[0], TABLES[-1]  # the TRUNCATE locks them in this order
    before = await _deadlocks(engine)
    async with engine.connect() as other:
        await other.execute(text(f"SELECT count(*) FROM {last}"))  # holds `last`, as a reader
        emptying = asyncio.create_task(truncate(engine))
        async with engine.connect() as watcher:
            for _ in range(250):  # a bounded wait for the TRUNCATE to queue behind `last`
                waiting = await watcher.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                        "AND NOT granted"
                    )
                )
                if waiting:
                    break
                await asyncio.sleep(0.02)
        assert waiting
        # Now `other` needs `first`, which the TRUNCATE holds: a deadlock, whose victim (the
        # TRUNCATE, waiting longest) must run again once `other` is done.
        await other.execute(text(f"SELECT count(*) FROM {first}"))
        await other.commit()
    await asyncio.wait_for(emptying, 30)
    assert await _deadlocks(engine) > before
