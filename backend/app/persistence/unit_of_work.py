"""The SQLAlchemy unit of work: one AsyncSession, one transaction per use case."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.persistence.repositories.idempotency import SqlIdempotencyRepository
from app.persistence.repositories.messages import SqlMessageRepository
from app.persistence.repositories.sessions import SqlSessionRepository
from app.persistence.repositories.users import SqlUserRepository


class SqlUnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.users = SqlUserRepository(session)
        self.sessions = SqlSessionRepository(session)
        self.messages = SqlMessageRepository(session)
        self.idempotency = SqlIdempotencyRepository(session)

    async def commit(self) -> None:
        await self._session.commit()

    async def rollback(self) -> None:
        await self._session.rollback()


def unit_of_work_factory(
    session_factory: async_sessionmaker[AsyncSession],
) -> Callable[[], AbstractAsyncContextManager[SqlUnitOfWork]]:
    """Fresh units of work on demand, for flows made of several short transactions. Leaving the
    block without a commit rolls back and hands the connection back to the pool."""

    @asynccontextmanager
    async def open_unit_of_work() -> AsyncIterator[SqlUnitOfWork]:
        async with session_factory() as session:
            yield SqlUnitOfWork(session)

    return open_unit_of_work
