from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select

from app.domain.dtos import Role
from app.domain.pagination import PageRequest
from app.persistence.models import ChatSession, Message
from app.persistence.repositories.base import Repository, keyset


class SqlMessageRepository(Repository):
    async def add(
        self, session_id: int, role: Role, content: str, tokens: int, created_at: datetime
    ) -> Message:
        stmt = (
            insert(Message)
            .values(
                session_id=session_id,
                role=role,
                content=content,
                tokens=tokens,
                created_at=created_at,
            )
            .returning(Message)
        )
        row = await self._session.scalar(stmt)
        assert row is not None
        return row

    async def get_owned(self, message_id: int, user_id: int) -> Message | None:
        stmt = (
            select(Message)
            .join(ChatSession, ChatSession.id == Message.session_id)
            .where(Message.id == message_id, ChatSession.user_id == user_id)
        )
        return await self._session.scalar(stmt)

    async def count_for_session(self, session_id: int) -> int:
        # Read after `record_message` locked and bumped the session: the counter is exact.
        stmt = select(ChatSession.message_count).where(ChatSession.id == session_id)
        return int(await self._session.scalar(stmt) or 0)

    async def list_for_session(self, session_id: int, page: PageRequest) -> Sequence[Message]:
        stmt = keyset(
            select(Message).where(Message.session_id == session_id),
            page,
            Message.created_at,
            Message.id,
            descending=False,
        )
        return (await self._session.scalars(stmt)).all()
