from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
from asyncpg import Record
from pydantic import TypeAdapter

from app.domain.dtos import MessageDTO, Role
from app.domain.pagination import PageRequest
from app.domain.ports import Exchange
from app.persistence.repositories.base import Repository, Sql, first


def columns(m: str) -> str:
    """A message as the API shows it, from the row aliased `m`. While a reply streams, its text
    so far is in `reply_chunks`."""
    return f"""{m}.id, {m}.session_id, {m}.role,
    CASE WHEN {m}.status = 'streaming' THEN {m}.content || coalesce(
        (SELECT string_agg(c.text, '' ORDER BY c.start_offset) FROM reply_chunks AS c
         WHERE c.message_id = {m}.id), '')
    ELSE {m}.content END AS content,
    {m}.tokens, {m}.created_at, {m}.status, {m}.input_tokens, {m}.error"""


#: A message's fields, for rows just written by INSERT/UPDATE ... RETURNING (no chunks yet, or
#: none any more).
FIELDS = ("id", "session_id", "role", "content", "tokens", "created_at", "status",
          "input_tokens", "error")  # fmt: skip
RETURNED = ", ".join(FIELDS)

# The session's counter and recency, and the insert, in one statement. Locking the session row
# serialises concurrent appends to one session: the counter stays exact and each message is
# stamped with its session's new activity time, read after the lock.
_ADD = Sql(
    f"""
    WITH session AS (
        UPDATE sessions SET message_count = message_count + 1, updated_at = clock_timestamp()
        WHERE id = :session_id AND user_id = :user_id AND message_count < :max_messages
        RETURNING id, updated_at
    )
    INSERT INTO messages (session_id, role, content, tokens, created_at)
    SELECT id, :role, :content, :tokens, updated_at FROM session
    RETURNING {RETURNED}
    """
)
_GET = Sql(
    f"""
    SELECT {columns("m")} FROM messages AS m JOIN sessions AS s ON s.id = m.session_id
    WHERE m.id = :message_id AND s.user_id = :user_id
    """
)


def _list_sql(after: bool) -> Sql:
    # Ownership and the page in one statement: no row at all means no such session; a row with
    # NULLs, an empty page.
    cursor = "AND (m.created_at, m.id) > (:after_at, :after_id)" if after else ""
    return Sql(
        f"""
        SELECT {columns("p")}
        FROM sessions AS s LEFT JOIN LATERAL (
            SELECT * FROM messages AS m WHERE m.session_id = s.id {cursor}
            ORDER BY m.created_at, m.id OFFSET :skip LIMIT :limit
        ) AS p ON true
        WHERE s.id = :session_id AND s.user_id = :user_id
        ORDER BY p.created_at, p.id
        """
    )


_LIST = {False: _list_sql(False), True: _list_sql(True)}

# A reply's start: the user message and the empty `streaming` reply, stamped like any message,
# and the context the model may see (read in the statement's snapshot: everything before these
# two). The partial unique index on streaming replies refuses a second one in the session: the
# statement then fails as a whole, nothing written.
_START = Sql(
    f"""
    WITH session AS (
        UPDATE sessions SET message_count = message_count + 2, updated_at = clock_timestamp()
        WHERE id = :session_id AND user_id = :user_id AND message_count + 2 <= :max_messages
        RETURNING id, updated_at
    ), added AS (
        INSERT INTO messages (session_id, role, content, status, worker_key, created_at)
        SELECT session.id, v.role, v.content, v.status, v.worker_key, session.updated_at
        FROM session, (VALUES ('user', :prompt, 'completed', NULL::integer),
                              ('assistant', '', 'streaming', :worker_key)
                      ) AS v(role, content, status, worker_key)
        RETURNING {RETURNED}
    ), context AS (
        SELECT array_agg(role ORDER BY created_at DESC, id DESC) AS roles,
               array_agg(content ORDER BY created_at DESC, id DESC) AS contents
        FROM (
            SELECT m.role, m.content, m.created_at, m.id FROM messages AS m, session
            WHERE m.session_id = session.id AND m.status IN ('completed', 'cancelled')
              AND m.content <> ''
            ORDER BY m.created_at DESC, m.id DESC LIMIT :context_limit
        ) AS recent
    )
    SELECT added.*, CASE WHEN added.role = 'user' THEN context.roles END AS context_roles,
           CASE WHEN added.role = 'user' THEN context.contents END AS context_contents
    FROM added, context
    """
)
_STREAMING = Sql("SELECT id FROM messages WHERE session_id = :session_id AND status = 'streaming'")
STREAMING_INDEX = "uq_messages_session_id_streaming"


_MESSAGES = TypeAdapter(list[MessageDTO])


def _message(row: Record) -> MessageDTO:
    return MessageDTO.model_validate(dict(row))


class SqlMessageRepository(Repository):
    async def add(
        self,
        user_id: int,
        session_id: int,
        role: Role,
        content: str,
        tokens: int,
        max_messages: int,
    ) -> MessageDTO | None:
        params = {
            "user_id": user_id,
            "session_id": session_id,
            "role": role,
            "content": content,
            "tokens": tokens,
            "max_messages": max_messages,
        }
        row = first(await self._db.write(_ADD, params))
        return _message(row) if row is not None else None

    async def get(self, message_id: int, user_id: int) -> MessageDTO | None:
        row = first(await self._db.read(_GET, {"message_id": message_id, "user_id": user_id}))
        return _message(row) if row is not None else None

    async def list(
        self, session_id: int, user_id: int, page: PageRequest
    ) -> Sequence[MessageDTO] | None:
        params: dict[str, Any] = {
            "session_id": session_id,
            "user_id": user_id,
            "skip": page.skip,
            "limit": page.limit,
        }
        if page.after is not None:
            params["after_at"], params["after_id"] = page.after.at, page.after.id
        rows = await self._db.read(_LIST[page.after is not None], params)
        if not rows:
            return None
        return _MESSAGES.validate_python([dict(row) for row in rows if row["id"] is not None])

    async def start_exchange(
        self,
        user_id: int,
        session_id: int,
        prompt: str,
        worker_key: int,
        *,
        context_limit: int,
        max_messages: int,
    ) -> Exchange | Literal["busy"] | None:
        params = {
            "user_id": user_id,
            "session_id": session_id,
            "prompt": prompt,
            "worker_key": worker_key,
            "context_limit": context_limit,
            "max_messages": max_messages,
        }
        try:
            rows = await self._db.write(_START, params)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == STREAMING_INDEX:
                return "busy"
            raise
        if not rows:
            return None
        user_row = next(row for row in rows if row["role"] == "user")
        reply_row = next(row for row in rows if row["role"] == "assistant")
        roles, contents = user_row["context_roles"] or [], user_row["context_contents"] or []
        context = list(zip(roles, contents, strict=True))
        return Exchange(_message(user_row), _message(reply_row), context)

    async def streaming_in_session(self, session_id: int) -> int | None:
        row = first(await self._db.read(_STREAMING, {"session_id": session_id}))
        return row["id"] if row is not None else None
