"""The SQLAlchemy unit of work: one AsyncSession, one transaction per use case."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

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
