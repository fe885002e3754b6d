from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, text

from app.domain.dtos import Role
from app.domain.pagination import PageRequest
from app.persistence.models import ChatSession, Message
from app.persistence.repositories.base import Repository, keyset

#: NOTIFY channel carrying comma-separated ids of replies whose row changed.
PROGRESS_CHANNEL = "agent_stack_reply_progress"
#: NOTIFY channel carrying the id of a reply someone asked to cancel.
CANCEL_CHANNEL = "agent_stack_reply_cancel"


# Hand-written so SQLAlchemy can cache it: a multi-row ORM insert is compiled on every call,
# and this statement runs once per reply.
_ADD_EXCHANGE = text(
    """
    INSERT INTO messages (session_id, role, content, status, worker_key, created_at)
    VALUES (:sid, 'user', :prompt, 'completed', NULL, :at),
           (:sid, 'assistant', '', 'streaming', :key, :at)
    ON CONFLICT (session_id) WHERE status = 'streaming' DO NOTHING
    RETURNING *
    """
)


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

    async def list_for_session(self, session_id: int, page: PageRequest) -> Sequence[Message]:
        stmt = keyset(
            select(Message).where(Message.session_id == session_id),
            page,
            Message.created_at,
            Message.id,
            descending=False,
        )
        return (await self._session.scalars(stmt)).all()

    async def add_exchange(
        self, session_id: int, prompt: str, created_at: datetime, worker_key: int
    ) -> tuple[Message, Message | None]:
        params = {"sid": session_id, "prompt": prompt, "at": created_at, "key": worker_key}
        stmt = select(Message).from_statement(_ADD_EXCHANGE)
        rows = {row.role: row for row in (await self._session.scalars(stmt, params)).all()}
        return rows["user"], rows.get("assistant")

    async def streaming_in_session(self, session_id: int) -> int | None:
        stmt = select(Message.id).where(
            Message.session_id == session_id, Message.status == "streaming"
        )
        return await self._session.scalar(stmt)

    async def recent_context(self, session_id: int, limit: int) -> Sequence[Message]:
        stmt = (
            select(Message)
            .where(
                Message.session_id == session_id,
                Message.status.in_(("completed", "cancelled")),
                Message.content != "",
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
        return (await self._session.scalars(stmt)).all()
