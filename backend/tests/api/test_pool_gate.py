"""Connections are handed out in the order they were asked for, within the pool's timeout.

SQLAlchemy's asyncio pool lets a task that gives a connection back and asks again at once take
it ahead of the tasks already waiting; under load some requests then starve for the whole pool
timeout. The unit of work enters the pool through a FIFO gate (`app.persistence.pool_gate`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_engine
from app.core.settings import Settings
from app.persistence.repositories.base import Sql
from app.persistence.unit_of_work import unit_of_work_factory

SELECT_ONE = Sql("SELECT 1 AS one")


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        settings.model_copy(
            update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_s": 1.0}
        )
    )
    yield engine
    await engine.dispose()


async def test_a_waiting_task_is_served_before_one_that_asks_again(
    one_connection: AsyncEngine,
) -> None:
    new_uow = unit_of_work_factory(one_connection)
    order: list[str] = []

    async def waiter() -> None:
        async with new_uow() as uow:
            await uow.read(SELECT_ONE)
        order.append("waiter")

    async with new_uow() as holder:
        async with holder.atomic():  # holds the only connection
            await holder.read(SELECT_ONE)
            waiting = asyncio.create_task(waiter())
            await asyncio.sleep(0.2)  # the waiter queues for the connection
        # Gave the connection back; asks again at once, without yielding to the waiter.
        await holder.read(SELECT_ONE)
        order.append("holder again")
    await waiting
    assert order == ["waiter", "holder again"]


async def test_a_wait_longer_than_the_pool_timeout_is_a_pool_timeout(
    one_connection: AsyncEngine,
) -> None:
    new_uow = unit_of_work_factory(one_connection)
    async with new_uow() as holder, holder.atomic():
        await holder.read(SELECT_ONE)
        async with new_uow() as late:
            with pytest.raises(PoolTimeout, match="within 1 s"):
                await late.read(SELECT_ONE)
    # The slot of the late task was never taken: the pool serves the next one at once.
    async with new_uow() as uow:
        assert [row["one"] for row in await uow.read(SELECT_ONE)] == [1]
