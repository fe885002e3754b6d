from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asyncpg import Record
from pydantic import TypeAdapter

from app.domain.dtos import SessionDTO
from app.domain.pagination import PageRequest
from app.domain.ports import Expiry, ForkSource
from app.persistence.repositories.base import Repository, Sql, first

SESSION_COLUMNS = (
    "id, user_id, title, message_count, created_at, updated_at, current_message_id, expires_at"
)
_COLUMNS = SESSION_COLUMNS


def live(alias: str | None = None) -> str:
    """The session has not expired: a temporary chat past its `expires_at` is gone from every
    route at once, whether or not the sweep has deleted it yet."""
    column = f"{alias}.expires_at" if alias else "expires_at"
    return f"({column} IS NULL OR {column} > now())"


#: `live()` for statements that name the table without an alias.
LIVE = live()
#: How many of the sessions counted in `users.session_count` have expired but are not deleted
#: yet (the partial index on `(user_id, expires_at)` answers it).
EXPIRED_COUNT = (
    "(SELECT count(*) FROM sessions AS x WHERE x.user_id = users.id AND x.expires_at <= now())"
)

_GET = Sql(
    f"SELECT {_COLUMNS} FROM sessions WHERE id = :session_id AND user_id = :user_id AND {LIVE}"
)
_SESSION_COUNT = Sql("SELECT session_count FROM users WHERE id = :user_id")
_MESSAGE_COUNT = Sql(
    f"SELECT message_count FROM sessions WHERE id = :session_id AND user_id = :user_id AND {LIVE}"
)


def _list_sql(after: bool) -> Sql:
    # Most recently active first; `(updated_at, id)` is a total order, so cursors never skip.
    cursor = "AND (updated_at, id) < (:after_at, :after_id)" if after else ""
    return Sql(
        f"SELECT {_COLUMNS} FROM sessions WHERE user_id = :user_id AND {LIVE} {cursor} "
        "ORDER BY updated_at DESC, id DESC OFFSET :skip LIMIT :limit"
    )


_LIST = {False: _list_sql(False), True: _list_sql(True)}

# The owner's counter and the insert in one statement: the user row's lock makes the quota exact.
_ADD = Sql(
    f"""
    WITH owner AS (
        UPDATE users SET session_count = session_count + 1
        WHERE id = :user_id AND session_count - {EXPIRED_COUNT} < :max_sessions
        RETURNING id
    )
    INSERT INTO sessions (user_id, title, expires_at)
    SELECT id, :title, CAST(:expires_at AS timestamptz) FROM owner
    RETURNING {_COLUMNS}
    """
)
# Rename and/or switch branch. The new current message must be one of the session's (the
# composite foreign key would refuse another's too, but as an error, not as "no such row").
_UPDATE = Sql(
    f"""
    UPDATE sessions
    SET title = coalesce(CAST(:title AS varchar), title),
        current_message_id = coalesce(CAST(:current AS bigint), current_message_id),
        expires_at = CASE WHEN CAST(:set_expiry AS boolean) THEN CAST(:expires_at AS timestamptz)
                     ELSE expires_at END,
        updated_at = clock_timestamp()
    WHERE id = :session_id AND user_id = :user_id AND {LIVE}
      AND (CAST(:current AS bigint) IS NULL OR EXISTS (
          SELECT 1 FROM messages AS m
          WHERE m.id = CAST(:current AS bigint) AND m.session_id = :session_id))
    RETURNING {_COLUMNS}
    """
)
_LOCK = Sql(
    f"SELECT id FROM sessions WHERE id = :session_id AND user_id = :user_id AND {LIVE} "
    "FOR NO KEY UPDATE"
)
# KEY SHARE: the session cannot be deleted until the fork commits, while appends (NO KEY
# UPDATE) go on.
_FORK_SOURCE = Sql(
    f"""
    SELECT s.title,
        CASE WHEN CAST(:message_id AS bigint) IS NULL THEN s.current_message_id ELSE m.id END
            AS end_id,
        CAST(:message_id AS bigint) IS NULL OR m.id IS NOT NULL AS found
    FROM sessions AS s
    LEFT JOIN messages AS m ON m.id = CAST(:message_id AS bigint) AND m.session_id = s.id
    WHERE s.id = :session_id AND s.user_id = :user_id AND {live("s")}
    FOR KEY SHARE OF s
    """
)
_DELETE = Sql(
    f"""
    WITH gone AS (
        DELETE FROM sessions WHERE id = :session_id AND user_id = :user_id AND {LIVE}
        RETURNING user_id
    )
    UPDATE users SET session_count = session_count - 1 FROM gone
    WHERE users.id = gone.user_id
    RETURNING users.id
    """
)


_SESSIONS = TypeAdapter(list[SessionDTO])


def _session(row: Record) -> SessionDTO:
    return SessionDTO.model_validate(dict(row))


class SqlSessionRepository(Repository):
    async def add(
        self, user_id: int, title: str, max_sessions: int, expires_at: datetime | None = None
    ) -> SessionDTO | None:
        params = {
            "user_id": user_id,
            "title": title,
            "max_sessions": max_sessions,
            "expires_at": expires_at,
        }
        row = first(await self._db.write(_ADD, params))
        return _session(row) if row is not None else None

    async def session_count(self, user_id: int) -> int | None:
        row = first(await self._db.read(_SESSION_COUNT, {"user_id": user_id}))
        return row["session_count"] if row is not None else None

    async def get(self, session_id: int, user_id: int) -> SessionDTO | None:
        params = {"session_id": session_id, "user_id": user_id}
        row = first(await self._db.read(_GET, params))
        return _session(row) if row is not None else None

    async def list(self, user_id: int, page: PageRequest) -> Sequence[SessionDTO]:
        params: dict[str, Any] = {"user_id": user_id, "skip": page.skip, "limit": page.limit}
        if page.after is not None:
            params["after_at"], params["after_id"] = page.after.at, page.after.id
        rows = await self._db.read(_LIST[page.after is not None], params)
        return _SESSIONS.validate_python([dict(row) for row in rows])  # one call for the page

    async def update(
        self,
        session_id: int,
        user_id: int,
        title: str | None,
        current_message_id: int | None,
        expiry: Expiry = "keep",
    ) -> SessionDTO | None:
        params = {
            "session_id": session_id,
            "user_id": user_id,
            "title": title,
            "current": current_message_id,
            "set_expiry": expiry != "keep",
            "expires_at": None if expiry == "keep" else expiry,
        }
        row = first(await self._db.write(_UPDATE, params))
        return _session(row) if row is not None else None

    async def lock(self, session_id: int, user_id: int) -> bool:
        params = {"session_id": session_id, "user_id": user_id}
        return bool(await self._db.read(_LOCK, params))

    async def fork_source(
        self, session_id: int, user_id: int, message_id: int | None
    ) -> ForkSource | None:
        params = {"session_id": session_id, "user_id": user_id, "message_id": message_id}
        row = first(await self._db.read(_FORK_SOURCE, params))
        return ForkSource(row["title"], row["end_id"], row["found"]) if row is not None else None

    async def delete(self, session_id: int, user_id: int) -> bool:
        params = {"session_id": session_id, "user_id": user_id}
        return bool(await self._db.write(_DELETE, params))

    async def message_count(self, session_id: int, user_id: int) -> int | None:
        params = {"session_id": session_id, "user_id": user_id}
        row = first(await self._db.read(_MESSAGE_COUNT, params))
        return row["message_count"] if row is not None else None
