"""The way into the connection pool: first come, first served."""

from __future__ import annotations

import asyncio
import weakref

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool

from app.core.metrics import waiting_for_connection


class PoolGate:
    """Lets tasks into the connection pool in the order they asked, never more than it holds.

    SQLAlchemy's asyncio pool is not fair: a connection handed back goes to whichever task asks
    next, and a waiter that loses it to a newcomer queues again at the back. Under load some
    requests waited out the whole pool timeout (503) while others were served at once (32
    concurrent requests on a pool of 10: a few waited 7 s). A FIFO semaphore as big as the pool
    keeps the order of arrival and leaves the pool itself nothing to wait for. One gate per
    pool (`PoolGate.of`), however many units of work use it.
    """

    _gates: weakref.WeakKeyDictionary[Pool, PoolGate] = weakref.WeakKeyDictionary()

    def __init__(self, slots: int, timeout_s: float) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._timeout_s = timeout_s

    @classmethod
    def of(cls, engine: AsyncEngine) -> PoolGate:
        pool = engine.sync_engine.pool
        gate = cls._gates.get(pool)
        if gate is None:
            if isinstance(pool, QueuePool):
                # QueuePool keeps its overflow limit without a public accessor.
                slots, timeout_s = pool.size() + max(pool._max_overflow, 0), pool.timeout()
            else:  # NullPool and the like: no limit of their own to keep
                slots, timeout_s = 1_000_000, 30.0
            gate = cls._gates[pool] = cls(slots, timeout_s)
        return gate

    async def enter(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free and nobody waiting: returns at once
            return
        with waiting_for_connection():  # counts the wait, and a timeout
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeout(
                    f"no database connection became free within {self._timeout_s:g} s"
                ) from None

    def leave(self) -> None:
        self._slots.release()
