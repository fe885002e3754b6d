from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import TextClause, text

from app.domain.dtos import SessionDTO
from app.domain.pagination import PageRequest
from app.persistence.repositories.base import Repository

# Statements are built once, at import: per request only the parameters change, so nothing is
# constructed, compiled or cache-keyed on the hot path beyond a string lookup.
_COLUMNS = "id, user_id, title, message_count, created_at, updated_at"
_GET = text(f"SELECT {_COLUMNS} FROM sessions WHERE id = :session_id AND user_id = :user_id")
_SESSION_COUNT = text("SELECT session_count FROM users WHERE id = :user_id")
_MESSAGE_COUNT = text(
    "SELECT message_count FROM sessions WHERE id = :session_id AND user_id = :user_id"
)


def _list_sql(after: bool) -> TextClause:
    # Most recently active first; `(updated_at, id)` is a total order, so cursors never skip.
    cursor = "AND (updated_at, id) < (:after_at, :after_id)" if after else ""
    return text(
        f"SELECT {_COLUMNS} FROM sessions WHERE user_id = :user_id {cursor} "
        "ORDER BY updated_at DESC, id DESC OFFSET :skip LIMIT :limit"
    )


_LIST = {False: _list_sql(False), True: _list_sql(True)}

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
        count: int | None = (await self._db.read(_SESSION_COUNT, {"user_id": user_id})).scalar()
        return count

    async def get(self, session_id: int, user_id: int) -> SessionDTO | None:
        params = {"session_id": session_id, "user_id": user_id}
        row = (await self._db.read(_GET, params)).first()
        return _session(row) if row is not None else None

    async def list(self, user_id: int, page: PageRequest) -> Sequence[SessionDTO]:
        params: dict[str, Any] = {"user_id": user_id, "skip": page.skip, "limit": page.limit}
        if page.after is not None:
            params["after_at"], params["after_id"] = page.after.at, page.after.id
        return [_session(row) for row in await self._db.read(_LIST[page.after is not None], params)]

    async def rename(self, session_id: int, user_id: int, title: str) -> SessionDTO | None:
        params = {"session_id": session_id, "user_id": user_id, "title": title}
        row = (await self._db.write(_RENAME, params)).first()
        return _session(row) if row is not None else None

    async def delete(self, session_id: int, user_id: int) -> bool:
        params = {"session_id": session_id, "user_id": user_id}
        return (await self._db.write(_DELETE, params)).first() is not None

    async def message_count(self, session_id: int, user_id: int) -> int | None:
        params = {"session_id": session_id, "user_id": user_id}
        count: int | None = (await self._db.read(_MESSAGE_COUNT, params)).scalar()
        return count
