from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.domain.dtos import Role
from app.domain.pagination import PageRequest
from app.persistence.models import ChatSession, Message
from app.persistence.repositories.base import Repository, keyset

#: NOTIFY channel carrying comma-separated ids of replies whose row changed.
PROGRESS_CHANNEL = "agent_stack_reply_progress"
#: NOTIFY channel carrying the id of a reply someone asked to cancel.
CANCEL_CHANNEL = "agent_stack_reply_cancel"


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
        stmt = (
            pg_insert(Message)
            .values(
                [
                    {"session_id": session_id, "role": "user", "content": prompt,
                     "status": "completed", "worker_key": None, "created_at": created_at},
                    {"session_id": session_id, "role": "assistant", "content": "",
                     "status": "streaming", "worker_key": worker_key, "created_at": created_at},
                ]
            )
            .on_conflict_do_nothing(
                index_elements=["session_id"], index_where=text("status = 'streaming'")
            )
            .returning(Message)
        )  # fmt: skip
        rows = {row.role: row for row in (await self._session.scalars(stmt)).all()}
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
