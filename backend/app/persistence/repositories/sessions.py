from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select, update

from app.domain.pagination import PageRequest
from app.domain.ports import MessageSlot
from app.persistence.models import ChatSession
from app.persistence.repositories.base import Repository, keyset


class SqlSessionRepository(Repository):
    async def add(self, user_id: int, title: str) -> ChatSession:
        stmt = insert(ChatSession).values(user_id=user_id, title=title).returning(ChatSession)
        row = await self._session.scalar(stmt)
        assert row is not None
        return row

    async def get_owned(self, session_id: int, user_id: int) -> ChatSession | None:
        stmt = select(ChatSession).where(
            ChatSession.id == session_id, ChatSession.user_id == user_id
        )
        return await self._session.scalar(stmt)

    async def count_owned(self, user_id: int) -> int:
        stmt = select(func.count()).select_from(ChatSession).where(ChatSession.user_id == user_id)
        return int(await self._session.scalar(stmt) or 0)

    async def list_owned(self, user_id: int, page: PageRequest) -> Sequence[ChatSession]:
        stmt = keyset(
            select(ChatSession).where(ChatSession.user_id == user_id),
            page,
            ChatSession.updated_at,
            ChatSession.id,
            descending=True,
        )
        return (await self._session.scalars(stmt)).all()

    async def rename(self, session_id: int, user_id: int, title: str) -> ChatSession | None:
        stmt = (
            update(ChatSession)
            .where(ChatSession.id == session_id, ChatSession.user_id == user_id)
            .values(title=title, updated_at=func.clock_timestamp())
            .returning(ChatSession)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return await self._session.scalar(stmt)

    async def delete_owned(self, session_id: int, user_id: int) -> bool:
        stmt = (
            delete(ChatSession)
            .where(ChatSession.id == session_id, ChatSession.user_id == user_id)
            .returning(ChatSession.id)
            .execution_options(synchronize_session=False)
        )
        return await self._session.scalar(stmt) is not None

    async def record_message(
        self, session_id: int, user_id: int, count: int = 1
    ) -> MessageSlot | None:
        stmt = (
            update(ChatSession)
            .where(ChatSession.id == session_id, ChatSession.user_id == user_id)
            .values(
                message_count=ChatSession.message_count + count,
                updated_at=func.clock_timestamp(),
            )
            .returning(ChatSession.updated_at, ChatSession.message_count)
            .execution_options(synchronize_session=False)
        )
        row = (await self._session.execute(stmt)).one_or_none()
        return MessageSlot(row.updated_at, row.message_count) if row is not None else None
