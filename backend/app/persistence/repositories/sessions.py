from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from asyncpg import Record
from pydantic import TypeAdapter

from app.domain.dtos import MessageDTO, SessionDTO
from app.domain.import_plan import ImportPlan
from app.domain.pagination import PageRequest
from app.domain.ports import ForkSource, SessionChanges, SessionTree
from app.persistence.repositories.base import Repository, Sql, first
from app.persistence.repositories.message_columns import message_columns, message_fields

SESSION_FIELDS = (
    "id", "user_id", "title", "message_count", "created_at", "updated_at", "current_message_id",
    "metadata", "archived", "pinned", "expires_at"
)  # fmt: skip
# Empty labels come back as NULL, which the driver does not decode (SessionDTO reads it as {}).
SESSION_COLUMNS = ", ".join(
    "NULLIF(metadata, '{}'::jsonb) AS metadata" if name == "metadata" else name
    for name in SESSION_FIELDS
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


def _list_sql(after: bool, filtered: bool) -> Sql:
    """Pinned first, then most recently active; `(pinned, updated_at, id)` is a total order,
    so cursors never skip or repeat a row that kept its place. The order and the cursor are
    served by one index, `(user_id, archived, pinned, updated_at, id)`, read backwards; a
    metadata filter by the GIN index on `metadata` (containment, `@>`)."""
    cursor = "AND (pinned, updated_at, id) < (:after_pinned, :after_at, :after_id)" if after else ""
    where = "AND metadata @> CAST(CAST(:metadata AS text) AS jsonb)" if filtered else ""
    return Sql(
        f"SELECT {_COLUMNS} FROM sessions "
        f"WHERE user_id = :user_id AND archived = :archived AND {LIVE} {where} {cursor} "
        "ORDER BY pinned DESC, updated_at DESC, id DESC OFFSET :skip LIMIT :limit"
    )


_LIST = {
    (after, filtered): _list_sql(after, filtered)
    for after in (False, True)
    for filtered in (False, True)
}


def _add_sql(columns: str, values: str) -> Sql:
    """The owner's counter and the insert in one statement: the user row's lock makes the
    quota exact (expired sessions the sweep has not deleted yet are not counted)."""
    return Sql(
        f"""
        WITH owner AS (
            UPDATE users SET session_count = session_count + 1
            WHERE id = :user_id AND session_count - {EXPIRED_COUNT} < :max_sessions
            RETURNING id
        )
        INSERT INTO sessions (user_id, title, metadata, expires_at{columns})
        SELECT id, :title, CAST(CAST(:metadata AS text) AS jsonb),
               CAST(:expires_at AS timestamptz){values}
        FROM owner
        RETURNING {_COLUMNS}
        """
    )


_ADD = _add_sql("", "")
_ADD_IMPORTED = _add_sql(
    ", archived, pinned, created_at, updated_at",
    """, :archived, :pinned,
        coalesce(CAST(:created_at AS timestamptz), now()),
        coalesce(CAST(:updated_at AS timestamptz), CAST(:created_at AS timestamptz), now())""",
)


def _trees_sql(where: str) -> Sql:
    """Sessions (picked by `where`; expired ones never) with all their messages, by id, in one
    statement: a row per message (session fields prefixed `s_`), or one with NULL message fields
    for a session without messages."""
    fields = ", ".join(f"picked.{name} AS s_{name}" for name in SESSION_FIELDS)
    return Sql(
        f"""
        WITH picked AS (
            SELECT {_COLUMNS} FROM sessions WHERE user_id = :user_id AND {LIVE} {where}
            ORDER BY id LIMIT :limit
        )
        SELECT {fields}, {message_columns("m")}
        FROM picked LEFT JOIN messages AS m ON m.session_id = picked.id
        ORDER BY picked.id, m.id
        """
    )


_TREE = _trees_sql("AND id = :session_id")
_TREES = _trees_sql("AND id > :after")
# Any of the fields (NULL: unchanged). The new current message must be one of the session's
# (the composite foreign key would refuse another's too, but as an error, not as "no such
# row"). A rename, a branch switch or a new expiry is activity; metadata, archiving and pinning
# are not.
_UPDATE = Sql(
    f"""
    UPDATE sessions
    SET title = coalesce(CAST(:title AS varchar), title),
        current_message_id = coalesce(CAST(:current AS bigint), current_message_id),
        metadata = coalesce(CAST(CAST(:metadata AS text) AS jsonb), metadata),
        archived = coalesce(CAST(:archived AS boolean), archived),
        pinned = coalesce(CAST(:pinned AS boolean), pinned),
        expires_at = CASE WHEN CAST(:set_expiry AS boolean) THEN CAST(:expires_at AS timestamptz)
                     ELSE expires_at END,
        updated_at = CASE
            WHEN CAST(:title AS varchar) IS NULL AND CAST(:current AS bigint) IS NULL
                 AND NOT CAST(:set_expiry AS boolean)
            THEN updated_at ELSE clock_timestamp() END
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
    SELECT s.title, CAST(s.metadata AS text) AS metadata,
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


def _json(value: Mapping[str, str] | None) -> str | None:
    return json.dumps(value) if value is not None else None


class SqlSessionRepository(Repository):
    async def add(
        self,
        user_id: int,
        title: str,
        max_sessions: int,
        metadata: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
    ) -> SessionDTO | None:
        params = {
            "user_id": user_id,
            "title": title,
            "max_sessions": max_sessions,
            "metadata": _json(metadata or {}),
            "expires_at": expires_at,
        }
        row = first(await self._db.write(_ADD, params))
        return _session(row) if row is not None else None

    async def add_imported(
        self, user_id: int, plan: ImportPlan, max_sessions: int
    ) -> SessionDTO | None:
        params = {
            "user_id": user_id,
            "title": plan.title,
            "max_sessions": max_sessions,
            "metadata": _json(plan.metadata),
            "archived": plan.archived,
            "pinned": plan.pinned,
            "created_at": plan.created_at,
            "updated_at": plan.updated_at,
            "expires_at": plan.expires_at,
        }
        row = first(await self._db.write(_ADD_IMPORTED, params))
        return _session(row) if row is not None else None

    async def trees(
        self, user_id: int, *, session_id: int | None = None, after: int = 0, limit: int = 1
    ) -> Sequence[SessionTree]:
        if session_id is not None:
            statement, params = _TREE, {"user_id": user_id, "session_id": session_id, "limit": 1}
        else:
            statement, params = _TREES, {"user_id": user_id, "after": after, "limit": limit}
        found: list[tuple[SessionDTO, list[MessageDTO]]] = []
        for row in await self._db.read(statement, params):
            if not found or found[-1][0].id != row["s_id"]:
                session = {name: row[f"s_{name}"] for name in SESSION_FIELDS}
                found.append((SessionDTO.model_validate(session), []))
            if row["id"] is not None:  # the `s_` session fields are no message field's names
                found[-1][1].append(MessageDTO.model_validate(message_fields(row)))
        return [SessionTree(session, messages) for session, messages in found]

    async def session_count(self, user_id: int) -> int | None:
        row = first(await self._db.read(_SESSION_COUNT, {"user_id": user_id}))
        return row["session_count"] if row is not None else None

    async def get(self, session_id: int, user_id: int) -> SessionDTO | None:
        params = {"session_id": session_id, "user_id": user_id}
        row = first(await self._db.read(_GET, params))
        return _session(row) if row is not None else None

    async def list(
        self,
        user_id: int,
        page: PageRequest,
        *,
        archived: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> Sequence[SessionDTO]:
        params: dict[str, Any] = {
            "user_id": user_id,
            "archived": archived,
            "skip": page.skip,
            "limit": page.limit,
        }
        if page.after is not None:
            params["after_at"], params["after_id"] = page.after.at, page.after.id
            params["after_pinned"] = page.after.pinned
        if metadata:
            params["metadata"] = _json(metadata)
        rows = await self._db.read(_LIST[page.after is not None, bool(metadata)], params)
        return _SESSIONS.validate_python([dict(row) for row in rows])  # one call for the page

    async def update(
        self, session_id: int, user_id: int, changes: SessionChanges
    ) -> SessionDTO | None:
        params = {
            "session_id": session_id,
            "user_id": user_id,
            "title": changes.title,
            "current": changes.current_message_id,
            "metadata": _json(changes.metadata),
            "archived": changes.archived,
            "pinned": changes.pinned,
            "set_expiry": changes.expiry != "keep",
            "expires_at": None if changes.expiry == "keep" else changes.expiry,
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
        if row is None:
            return None
        return ForkSource(row["title"], row["end_id"], row["found"], json.loads(row["metadata"]))

    async def delete(self, session_id: int, user_id: int) -> bool:
        params = {"session_id": session_id, "user_id": user_id}
        return bool(await self._db.write(_DELETE, params))

    async def message_count(self, session_id: int, user_id: int) -> int | None:
        params = {"session_id": session_id, "user_id": user_id}
        row = first(await self._db.read(_MESSAGE_COUNT, params))
        return row["message_count"] if row is not None else None
