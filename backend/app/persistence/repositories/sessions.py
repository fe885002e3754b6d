from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text

from app.domain.dtos import SessionDTO
from app.domain.pagination import PageRequest
from app.domain.ports import ForkSource
from app.persistence.models import ChatSession, User
from app.persistence.repositories.base import Repository, keyset

SESSION_COLUMNS = "id, user_id, title, message_count, created_at, updated_at, current_message_id"
_COLUMNS = SESSION_COLUMNS
_SELECT = select(
    ChatSession.id,
    ChatSession.user_id,
    ChatSession.title,
    ChatSession.message_count,
    ChatSession.created_at,
    ChatSession.updated_at,
    ChatSession.current_message_id,
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
# Rename and/or switch branch. The new current message must be one of the session's (the
# composite foreign key would refuse another's too, but as an error, not as "no such row").
_UPDATE = text(
    f"""
    UPDATE sessions
    SET title = coalesce(CAST(:title AS varchar), title),
        current_message_id = coalesce(CAST(:current AS bigint), current_message_id),
        updated_at = clock_timestamp()
    WHERE id = :session_id AND user_id = :user_id
      AND (CAST(:current AS bigint) IS NULL OR EXISTS (
          SELECT 1 FROM messages AS m
          WHERE m.id = CAST(:current AS bigint) AND m.session_id = :session_id))
    RETURNING {_COLUMNS}
    """
)
_LOCK = text(
    "SELECT id FROM sessions WHERE id = :session_id AND user_id = :user_id FOR NO KEY UPDATE"
)
# KEY SHARE: the session cannot be deleted until the fork commits, while appends (NO KEY
# UPDATE) go on.
_FORK_SOURCE = text(
    """
    SELECT s.title,
        CASE WHEN CAST(:message_id AS bigint) IS NULL THEN s.current_message_id ELSE m.id END
            AS end_id,
        CAST(:message_id AS bigint) IS NULL OR m.id IS NOT NULL AS found
    FROM sessions AS s
    LEFT JOIN messages AS m ON m.id = CAST(:message_id AS bigint) AND m.session_id = s.id
    WHERE s.id = :session_id AND s.user_id = :user_id
    FOR KEY SHARE OF s
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

    async def update(
        self, session_id: int, user_id: int, title: str | None, current_message_id: int | None
    ) -> SessionDTO | None:
        params = {
            "session_id": session_id,
            "user_id": user_id,
            "title": title,
            "current": current_message_id,
        }
        row = (await self._db.write(_UPDATE, params)).first()
        return _session(row) if row is not None else None

    async def lock(self, session_id: int, user_id: int) -> bool:
        params = {"session_id": session_id, "user_id": user_id}
        return (await self._db.read(_LOCK, params)).first() is not None

    async def fork_source(
        self, session_id: int, user_id: int, message_id: int | None
    ) -> ForkSource | None:
        params = {"session_id": session_id, "user_id": user_id, "message_id": message_id}
        row = (await self._db.read(_FORK_SOURCE, params)).first()
        return ForkSource(row.title, row.end_id, row.found) if row is not None else None

    async def delete(self, session_id: int, user_id: int) -> bool:
        params = {"session_id": session_id, "user_id": user_id}
        return (await self._db.write(_DELETE, params)).first() is not None

    async def message_count(self, session_id: int, user_id: int) -> int | None:
        stmt = select(ChatSession.message_count).where(
            ChatSession.id == session_id, ChatSession.user_id == user_id
        )
        count: int | None = (await self._db.read(stmt)).scalar()
        return count
