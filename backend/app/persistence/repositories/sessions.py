from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text

from app.domain.dtos import SessionDTO
from app.domain.pagination import PageRequest
from app.persistence.models import ChatSession, User
from app.persistence.repositories.base import Repository, keyset

_COLUMNS = "id, user_id, title, message_count, created_at, updated_at"
_SELECT = select(
    ChatSession.id,
    ChatSession.user_id,
    ChatSession.title,
    ChatSession.message_count,
    ChatSession.created_at,
    ChatSession.updated_at,
)

# The owner's counter and the insert in one statement: the user row's lock makes the quota exact.
_ADD = text(
    f"""
    WITH owner AS (
        UPDATE users SET session_count = session_count + 1
        WHERE id = :user_id AND session_count < :max_sessions
        RETURNING id
    )
    INSERT INTO sessions (user_id, title) SELECT id, :title FROM owner
    RETURNING {_COLUMNS}
    """
)
_RENAME = text(
    f"""
    UPDATE sessions SET title = :title, updated_at = clock_timestamp()
    WHERE id = :session_id AND user_id = :user_id
    RETURNING {_COLUMNS}
    """
)
_DELETE = text(
    """
    WITH gone AS (
        DELETE FROM sessions WHERE id = :session_id AND user_id = :user_id RETURNING user_id
    )
    UPDATE users SET session_count = session_count - 1 FROM gone
    WHERE users.id = gone.user_id
    RETURNING users.id
    """
)


def _session(row: object) -> SessionDTO:
    return SessionDTO.model_validate(row, from_attributes=True)


class SqlSessionRepository(Repository):
    async def add(self, user_id: int, title: str, max_sessions: int) -> SessionDTO | None:
        params = {"user_id": user_id, "title": title, "max_sessions": max_sessions}
        row = (await self._db.write(_ADD, params)).first()
        return _session(row) if row is not None else None

    async def session_count(self, user_id: int) -> int | None:
        stmt = select(User.session_count).where(User.id == user_id)
        count: int | None = (await self._db.read(stmt)).scalar()
        return count

    async def get(self, session_id: int, user_id: int) -> SessionDTO | None:
        stmt = _SELECT.where(ChatSession.id == session_id, ChatSession.user_id == user_id)
        row = (await self._db.read(stmt)).first()
        return _session(row) if row is not None else None

    async def list(self, user_id: int, page: PageRequest) -> Sequence[SessionDTO]:
        stmt = keyset(
            _SELECT.where(ChatSession.user_id == user_id),
            page,
            ChatSession.updated_at,
            ChatSession.id,
            descending=True,
        )
        return [_session(row) for row in await self._db.read(stmt)]

    async def rename(self, session_id: int, user_id: int, title: str) -> SessionDTO | None:
        params = {"session_id": session_id, "user_id": user_id, "title": title}
        row = (await self._db.write(_RENAME, params)).first()
        return _session(row) if row is not None else None

    async def delete(self, session_id: int, user_id: int) -> bool:
        params = {"session_id": session_id, "user_id": user_id}
        return (await self._db.write(_DELETE, params)).first() is not None

    async def message_count(self, session_id: int, user_id: int) -> int | None:
        stmt = select(ChatSession.message_count).where(
            ChatSession.id == session_id, ChatSession.user_id == user_id
        )
        count: int | None = (await self._db.read(stmt)).scalar()
        return count
