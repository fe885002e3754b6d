"""Messages: appends, reads, a branch's thread, reply starts and the copy a fork makes.

A session's messages form a tree (`parent_id`); the session points at the last message of its
active branch (`current_message_id`). Every write that adds a message locks the session row
first and reads the current message from the locked row, its latest version: concurrent appends
chain one under the other instead of forking, and the session's counter stays exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, cast

import asyncpg
from asyncpg import Record
from pydantic import TypeAdapter

from app.domain.dtos import (
    FeedbackDTO,
    FeedbackInDTO,
    MessageDTO,
    Role,
    SessionDTO,
    ThreadMessageDTO,
    ToolCall,
    ToolCallIn,
)
from app.domain.import_plan import ImportPlan
from app.domain.language_model import PromptMessage
from app.domain.pagination import PageRequest
from app.domain.ports import (
    Exchange,
    NewMessage,
    Parent,
    Stale,
    StartRefusal,
    ThreadPage,
    UnansweredCall,
)
from app.persistence.repositories.base import Repository, Sql, first
from app.persistence.repositories.message_columns import FIELDS, message_fields
from app.persistence.repositories.message_columns import message_columns as columns
from app.persistence.repositories.sessions import LIVE, SESSION_COLUMNS, live

RETURNED = ", ".join(FIELDS)

# The caller's session, locked, if it may take one more message; and its counter, recency and
# current message moved to the message `added`. Shared by both inserts below.
_LOCKED = f"""locked AS (
        SELECT id, current_message_id FROM sessions
        WHERE id = :session_id AND user_id = :user_id AND message_count < :max_messages
          AND {LIVE}
        FOR NO KEY UPDATE
    )"""
_MOVED = """moved AS (
        UPDATE sessions
        SET message_count = message_count + 1, updated_at = added.created_at,
            current_message_id = added.id
        FROM added WHERE sessions.id = added.session_id
    )"""
# An append in one statement. The session row is locked first (NO KEY UPDATE: what an UPDATE
# of its counter takes anyway; it leaves foreign-key checks alone) and the new message goes
# under the locked row's current message; then the session counts it, points at it and moves
# to the top. A tool result is checked by a walk up the branch from that parent, stopping at
# the assistant message holding its call: the result must answer a call, not yet answered.
#
# The walk reads the statement's snapshot. If the parent was committed while we waited for the
# lock, the snapshot cannot see it (the locked row is the only thing read at its newest): the
# probe says `stale`, nothing is written, and the caller runs the statement again holding the
# session's lock first, in a transaction that sees it.
_ADD = Sql(
    f"""
    WITH RECURSIVE {_LOCKED}, walk AS (
        SELECT m.id, m.parent_id, m.tool_calls, m.tool_call_id
        FROM locked JOIN messages AS m ON m.id = locked.current_message_id
        WHERE CAST(:tool_call_id AS varchar) IS NOT NULL
        UNION ALL
        SELECT m.id, m.parent_id, m.tool_calls, m.tool_call_id
        FROM walk JOIN messages AS m ON m.id = walk.parent_id
        WHERE walk.tool_calls IS NULL OR NOT walk.tool_calls @> CAST(CAST(:call AS text) AS jsonb)
    ), probe AS (
        SELECT locked.id AS session_id, locked.current_message_id AS parent_id,
            CAST(:tool_call_id AS varchar) IS NOT NULL AND locked.current_message_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM walk) AS stale,
            EXISTS (
                SELECT 1 FROM walk WHERE walk.tool_calls @> CAST(CAST(:call AS text) AS jsonb)
            ) AS call_found,
            (SELECT min(walk.id) FROM walk
             WHERE walk.tool_call_id = CAST(:tool_call_id AS varchar)) AS answered_by
        FROM locked
    ), added AS (
        INSERT INTO messages (session_id, user_id, parent_id, role, content, tokens, tool_calls,
                              tool_call_id, created_at)
        SELECT probe.session_id, :user_id, probe.parent_id, :role, :content, :tokens,
               CAST(CAST(:tool_calls AS text) AS jsonb), CAST(:tool_call_id AS varchar),
               clock_timestamp()
        FROM probe
        WHERE CAST(:tool_call_id AS varchar) IS NULL
           OR (probe.call_found AND probe.answered_by IS NULL)
        RETURNING {RETURNED}
    ), {_MOVED}
    SELECT probe.stale, probe.answered_by, added.*
    FROM probe LEFT JOIN added ON true
    """
)
# The same for a message that answers no tool call (nearly all): no walk up the branch.
_ADD_PLAIN = Sql(
    f"""
    WITH {_LOCKED}, added AS (
        INSERT INTO messages (session_id, user_id, parent_id, role, content, tokens, tool_calls,
                              created_at)
        SELECT locked.id, :user_id, locked.current_message_id, :role, :content, :tokens,
               CAST(CAST(:tool_calls AS text) AS jsonb), clock_timestamp()
        FROM locked
        RETURNING {RETURNED}
    ), {_MOVED}
    SELECT false AS stale, CAST(NULL AS bigint) AS answered_by, added.* FROM added
    """
)
_GET = Sql(
    f"""
    SELECT {columns("m")} FROM messages AS m JOIN sessions AS s ON s.id = m.session_id
    WHERE m.id = :message_id AND s.user_id = :user_id AND {live("s")}
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
        WHERE s.id = :session_id AND s.user_id = :user_id AND {live("s")}
        ORDER BY p.created_at, p.id
        """
    )


_LIST = {False: _list_sql(False), True: _list_sql(True)}


def _siblings(m: str) -> str:
    """The ids of the messages sharing `m`'s parent, oldest first, by the (session_id,
    parent_id) index; a root's siblings are the session's roots."""
    select = "SELECT c.id FROM messages AS c WHERE c.session_id = {m}.session_id AND {cond} "
    order = "ORDER BY c.created_at, c.id"
    roots = select.format(m=m, cond="c.parent_id IS NULL") + order
    children = select.format(m=m, cond=f"c.parent_id = {m}.parent_id") + order
    return f"CASE WHEN {m}.parent_id IS NULL THEN array({roots}) ELSE array({children}) END"


# The branch ending at the current message (or above `before`), walked up by primary key.
_THREAD = Sql(
    f"""
    WITH RECURSIVE s AS (
        SELECT sessions.id,
            CASE WHEN CAST(:before AS bigint) IS NULL THEN sessions.current_message_id
                 ELSE b.parent_id END AS start_id,
            CAST(:before AS bigint) IS NULL OR b.id IS NOT NULL AS before_found
        FROM sessions
        LEFT JOIN messages AS b ON b.id = CAST(:before AS bigint) AND b.session_id = sessions.id
        WHERE sessions.id = :session_id AND sessions.user_id = :user_id AND {LIVE}
    ), path AS (
        SELECT m.*, 1 AS depth FROM s JOIN messages AS m
            ON m.id = s.start_id AND m.session_id = s.id
        UNION ALL
        SELECT m.*, p.depth + 1 FROM path AS p JOIN messages AS m ON m.id = p.parent_id
        WHERE p.depth < :limit
    )
    SELECT s.before_found, {columns("p")}, {_siblings("p")} AS sibling_ids
    FROM s LEFT JOIN path AS p ON true
    ORDER BY p.depth DESC
    """
)

#: What a prompt may hold: finished messages with something to say (a cancelled reply keeps
#: its partial text; failed and streaming replies are left out).
_ELIGIBLE = (
    "(m.status IN ('completed', 'cancelled') AND (m.content <> '' OR m.tool_calls IS NOT NULL))"
)


def _exchange_sql(locked: str, anchor: str) -> Sql:
    """A reply's start, in one statement: lock the session (`locked`, which yields its `id` and
    whatever `anchor` needs), add the user message (when there is a prompt) under the anchor and
    the `streaming` reply under that, make the reply current, count both, and read the context:
    the branch from the anchor up, newest first, until `context_limit` messages it may see.

    The partial unique index on streaming replies refuses a second one in the session: the
    statement then fails as a whole, nothing written. An anchor the snapshot cannot see is
    reported (`unseen`) and nothing is written (see `_ADD` on stale snapshots)."""
    return Sql(
        f"""
        WITH RECURSIVE locked AS ({locked}
        ), anchor AS (
            SELECT locked.id AS session_id, {anchor} AS parent_id FROM locked
        ), path AS (
            SELECT m.id, m.parent_id, m.role, m.content, m.tool_calls, m.tool_call_id,
                   1 AS depth, {_ELIGIBLE} AS eligible, CAST({_ELIGIBLE} AS integer) AS taken
            FROM anchor JOIN messages AS m
                ON m.id = anchor.parent_id AND m.session_id = anchor.session_id
            UNION ALL
            SELECT m.id, m.parent_id, m.role, m.content, m.tool_calls, m.tool_call_id,
                   p.depth + 1, {_ELIGIBLE}, p.taken + CAST({_ELIGIBLE} AS integer)
            FROM path AS p JOIN messages AS m ON m.id = p.parent_id
            WHERE p.taken < :context_limit
        ), probe AS (
            SELECT anchor.*,
                anchor.parent_id IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM path WHERE path.depth = 1) AS unseen,
                anchor.parent_id IS NULL AND CAST(:prompt AS text) IS NULL AS nothing_to_continue
            FROM anchor
        ), ready AS (
            -- One time for the exchange, read after the lock: both rows share it (ids order
            -- them), as the session's new activity time.
            SELECT probe.*, clock_timestamp() AS at FROM probe
            WHERE NOT unseen AND NOT nothing_to_continue
        ), asked AS (
            INSERT INTO messages (session_id, user_id, parent_id, role, content, created_at)
            SELECT ready.session_id, :user_id, ready.parent_id, 'user', CAST(:prompt AS text),
                   ready.at
            FROM ready WHERE CAST(:prompt AS text) IS NOT NULL
            RETURNING {RETURNED}
        ), reply AS (
            INSERT INTO messages (session_id, user_id, parent_id, role, content, status,
                                  worker_key, model, created_at)
            SELECT ready.session_id, :user_id,
                   coalesce((SELECT asked.id FROM asked), ready.parent_id),
                   'assistant', '', 'streaming', CAST(:worker_key AS integer),
                   CAST(:model AS varchar), ready.at
            FROM ready
            RETURNING {RETURNED}
        ), moved AS (
            UPDATE sessions
            SET message_count = message_count + 1 + (SELECT count(*) FROM asked),
                current_message_id = reply.id, updated_at = reply.created_at
            FROM reply WHERE sessions.id = reply.session_id
        ), context AS (
            SELECT jsonb_agg(
                jsonb_build_object('role', role, 'content', content, 'tool_calls', tool_calls,
                                   'tool_call_id', tool_call_id)
                ORDER BY depth) FILTER (WHERE eligible) AS items
            FROM path
        )
        SELECT probe.unseen, probe.nothing_to_continue, context.items AS context, added.*
        FROM probe CROSS JOIN context
        LEFT JOIN (SELECT * FROM asked UNION ALL SELECT * FROM reply) AS added ON true
        """
    )


_START = _exchange_sql(
    f"""
    SELECT id, current_message_id FROM sessions
    WHERE id = :session_id AND user_id = :user_id AND message_count + :adding <= :max_messages
      AND {LIVE}
    FOR NO KEY UPDATE""",
    """CASE CAST(:parent_mode AS text) WHEN 'current' THEN locked.current_message_id
           WHEN 'given' THEN CAST(:parent_id AS bigint) END""",
)
_REGENERATE = _exchange_sql(
    f"""
    SELECT s.id, t.parent_id AS anchor_id
    FROM messages AS t JOIN sessions AS s ON s.id = t.session_id
    WHERE t.id = :message_id AND s.user_id = :user_id AND t.role = 'assistant'
      AND t.parent_id IS NOT NULL AND s.message_count + 1 <= :max_messages AND {live("s")}
    FOR NO KEY UPDATE OF s""",
    "locked.anchor_id",
)
_STREAMING = Sql("SELECT id FROM messages WHERE session_id = :session_id AND status = 'streaming'")
STREAMING_INDEX = "uq_messages_session_id_streaming"

# A fork's copy: the path from the root to `end_id`, into the (new, empty) target session, in
# order. New ids are drawn from the identity sequence and handed out in ascending order along the
# path, so each copy's parent is older than it (parent_id < id), as in the original.
_COPY = Sql(
    f"""
    WITH RECURSIVE path AS (
        SELECT m.*, 1 AS depth FROM messages AS m
        WHERE m.id = :end_id AND m.session_id = :source_id
        UNION ALL
        SELECT m.*, p.depth + 1 FROM path AS p JOIN messages AS m ON m.id = p.parent_id
    ), ordered AS (
        SELECT path.*, row_number() OVER (ORDER BY path.depth DESC) AS n FROM path
        WHERE NOT EXISTS (SELECT 1 FROM path WHERE path.status = 'streaming')
    ), ids AS (
        SELECT drawn.id, row_number() OVER (ORDER BY drawn.id) AS n FROM (
            SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id FROM ordered
        ) AS drawn
    ), copied AS (
        INSERT INTO messages (id, session_id, user_id, parent_id, role, content, tokens,
                              created_at, status, input_tokens, error, finished_at, tool_calls,
                              tool_call_id, finish_reason, model)
        OVERRIDING SYSTEM VALUE
        SELECT ids.id, :target_id, o.user_id, lag(ids.id) OVER (ORDER BY o.n), o.role, o.content,
               o.tokens,
               o.created_at, o.status, o.input_tokens, o.error, o.finished_at, o.tool_calls,
               o.tool_call_id, o.finish_reason, o.model
        FROM ordered AS o JOIN ids ON ids.n = o.n
        RETURNING id
    ), moved AS (
        UPDATE sessions
        SET message_count = (SELECT count(*) FROM copied),
            current_message_id = (SELECT max(copied.id) FROM copied),
            updated_at = clock_timestamp()
        WHERE id = :target_id
        RETURNING {SESSION_COLUMNS}
    )
    SELECT moved.*, EXISTS (SELECT 1 FROM path WHERE path.status = 'streaming') AS streaming
    FROM moved
    """
)


# Feedback on a message of the caller's: set (a rating) or removed (NULL), in one statement that
# also says whether the message exists and what role it has (only replies take feedback). A
# message of an expired session is missing.
_FEEDBACK = Sql(
    f"""
    WITH target AS (
        SELECT m.id, m.role FROM messages AS m JOIN sessions AS s ON s.id = m.session_id
        WHERE m.id = :message_id AND m.user_id = :user_id AND s.user_id = :user_id
          AND {live("s")}
    ), changed AS (
        UPDATE messages AS m
        SET feedback_rating = CAST(:rating AS varchar),
            feedback_comment = CAST(:comment AS text),
            feedback_at = CASE WHEN CAST(:rating AS varchar) IS NULL THEN NULL
                               ELSE clock_timestamp() END
        FROM target WHERE m.id = target.id AND target.role = 'assistant'
        RETURNING m.feedback_rating, m.feedback_comment, m.feedback_at
    )
    SELECT target.role, changed.* FROM target LEFT JOIN changed ON true
    """
)

# An import's messages in one statement, from arrays (one element per message, in the plan's
# order: parents first). New ids are drawn from the identity sequence and handed out in that
# order, so each parent is older than its children (parent_id < id); `parent_n` is the parent's
# position. Times left out are the statement's; the session is counted and pointed at its
# current message in the same statement, its own times kept.
_ADD_TREE = Sql(
    f"""
    WITH batch AS (
        SELECT * FROM unnest(
            CAST(:parents AS integer[]), CAST(:roles AS text[]), CAST(:contents AS text[]),
            CAST(:statuses AS text[]), CAST(:tokens AS integer[]), CAST(:inputs AS integer[]),
            CAST(:models AS text[]), CAST(:finishes AS text[]), CAST(:errors AS text[]),
            CAST(:calls AS text[]), CAST(:call_ids AS text[]), CAST(:created AS timestamptz[]),
            CAST(:ratings AS text[]), CAST(:comments AS text[]), CAST(:rated AS timestamptz[])
        ) WITH ORDINALITY AS b(parent_n, role, content, status, tokens, input_tokens, model,
                               finish_reason, error, calls, tool_call_id, created_at, rating,
                               comment, rated_at, n)
    ), ids AS (
        SELECT drawn.id, row_number() OVER (ORDER BY drawn.id) AS n FROM (
            SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id FROM batch
        ) AS drawn
    ), added AS (
        INSERT INTO messages (id, session_id, user_id, parent_id, role, content, status, tokens,
                              input_tokens, model, finish_reason, error, tool_calls,
                              tool_call_id, created_at, feedback_rating, feedback_comment,
                              feedback_at)
        OVERRIDING SYSTEM VALUE
        SELECT ids.id, :session_id, :user_id, parent.id, b.role, b.content, b.status, b.tokens,
               b.input_tokens, b.model, b.finish_reason, b.error, CAST(b.calls AS jsonb),
               b.tool_call_id, coalesce(b.created_at, now()), b.rating, b.comment,
               CASE WHEN b.rating IS NOT NULL THEN coalesce(b.rated_at, now()) END
        FROM batch AS b JOIN ids ON ids.n = b.n LEFT JOIN ids AS parent ON parent.n = b.parent_n
        RETURNING id
    ), moved AS (
        UPDATE sessions
        SET message_count = (SELECT count(*) FROM added),
            current_message_id = (SELECT ids.id FROM ids WHERE ids.n = CAST(:current AS bigint))
        WHERE id = :session_id AND user_id = :user_id
        RETURNING {SESSION_COLUMNS}
    )
    SELECT * FROM moved
    """
)

_MESSAGES = TypeAdapter(list[MessageDTO])
_THREAD_MESSAGES = TypeAdapter(list[ThreadMessageDTO])


def _message(row: Record) -> MessageDTO:
    return MessageDTO.model_validate(message_fields(row))


def _context(items: list[dict[str, Any]] | None) -> list[PromptMessage]:
    return [
        PromptMessage(
            item["role"],
            item["content"],
            tuple(ToolCall.model_validate(call) for call in item["tool_calls"] or ()),
            item["tool_call_id"],
        )
        for item in items or ()
    ]


def _calls_json(calls: Sequence[ToolCall | ToolCallIn] | None) -> str | None:
    if calls is None:
        return None
    return json.dumps([call.model_dump(mode="json") for call in calls])


class SqlMessageRepository(Repository):
    async def add(
        self, user_id: int, session_id: int, message: NewMessage, max_messages: int
    ) -> MessageDTO | Stale | UnansweredCall | None:
        call_id = message.tool_call_id
        params = {
            "user_id": user_id,
            "session_id": session_id,
            "role": message.role,
            "content": message.content,
            "tokens": message.tokens,
            "max_messages": max_messages,
            "tool_calls": _calls_json(message.tool_calls),
        }
        if call_id is None:
            row = first(await self._db.write(_ADD_PLAIN, params))
        else:
            params |= {"tool_call_id": call_id, "call": json.dumps([{"id": call_id}])}
            row = first(await self._db.write(_ADD, params))
        if row is None:
            return None
        if row["id"] is not None:
            return _message(row)
        if row["stale"]:
            return "stale"
        return UnansweredCall(row["answered_by"])

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
        return _MESSAGES.validate_python(
            [message_fields(row) for row in rows if row["id"] is not None]
        )

    async def thread(
        self, session_id: int, user_id: int, *, before: int | None, limit: int
    ) -> ThreadPage | None:
        params = {"session_id": session_id, "user_id": user_id, "before": before, "limit": limit}
        rows = await self._db.read(_THREAD, params)
        if not rows:
            return None
        messages = _THREAD_MESSAGES.validate_python(
            [message_fields(row) for row in rows if row["id"] is not None]  # one call
        )
        return ThreadPage(messages, before_found=rows[0]["before_found"])

    async def start_exchange(
        self,
        user_id: int,
        session_id: int,
        prompt: str | None,
        parent: Parent,
        worker_key: int,
        model: str,
        *,
        context_limit: int,
        max_messages: int,
    ) -> Exchange | StartRefusal | None:
        params = {
            "user_id": user_id,
            "session_id": session_id,
            "prompt": prompt,
            "adding": 1 if prompt is None else 2,
            "parent_mode": "current" if parent == "current" else "given",
            "parent_id": parent if isinstance(parent, int) else None,
            "worker_key": worker_key,
            "model": model,
            "context_limit": context_limit,
            "max_messages": max_messages,
        }
        found = await self._exchange(_START, params)
        if isinstance(found, str) and found == "unseen":
            return "stale" if parent == "current" else "no_parent"
        return found

    async def regenerate(
        self,
        user_id: int,
        message_id: int,
        worker_key: int,
        model: str,
        *,
        context_limit: int,
        max_messages: int,
    ) -> Exchange | Literal["busy"] | None:
        params = {
            "user_id": user_id,
            "message_id": message_id,
            "prompt": None,
            "worker_key": worker_key,
            "model": model,
            "context_limit": context_limit,
            "max_messages": max_messages,
        }
        found = await self._exchange(_REGENERATE, params)
        # The parent of a message the statement sees is always visible, and never missing.
        assert found is None or found == "busy" or isinstance(found, Exchange)
        return found

    async def _exchange(
        self, statement: Sql, params: dict[str, Any]
    ) -> Exchange | Literal["busy", "unseen", "nothing_to_continue"] | None:
        try:
            rows = await self._db.write(statement, params)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == STREAMING_INDEX:
                return "busy"
            raise
        if not rows:
            return None
        if rows[0]["unseen"]:
            return "unseen"
        if rows[0]["nothing_to_continue"]:
            return "nothing_to_continue"
        user_row = next((row for row in rows if row["role"] == "user"), None)
        reply_row = next(row for row in rows if row["role"] == "assistant")
        return Exchange(
            _message(user_row) if user_row is not None else None,
            _message(reply_row),
            _context(rows[0]["context"]),
        )

    async def copy_path(
        self, source_id: int, end_id: int, target_id: int
    ) -> SessionDTO | Literal["streaming"]:
        params = {"source_id": source_id, "end_id": end_id, "target_id": target_id}
        (row,) = await self._db.write(_COPY, params)
        if row["streaming"]:
            return "streaming"
        return SessionDTO.model_validate({k: v for k, v in row.items() if k != "streaming"})

    async def streaming_in_session(self, session_id: int) -> int | None:
        row = first(await self._db.read(_STREAMING, {"session_id": session_id}))
        return row["id"] if row is not None else None

    async def add_tree(self, user_id: int, session_id: int, plan: ImportPlan) -> SessionDTO:
        messages = plan.messages
        feedback = [m.feedback for m in messages]
        params = {
            "user_id": user_id,
            "session_id": session_id,
            "parents": [p + 1 if p is not None else None for p in plan.parents],
            "roles": [m.role for m in messages],
            "contents": [m.content or "" for m in messages],
            "statuses": [m.status for m in messages],
            "tokens": [m.tokens for m in messages],
            "inputs": [m.input_tokens for m in messages],
            "models": [m.model for m in messages],
            "finishes": [m.finish_reason for m in messages],
            "errors": [m.error for m in messages],
            "calls": [_calls_json(m.tool_calls) for m in messages],
            "call_ids": [m.tool_call_id for m in messages],
            "created": [m.created_at for m in messages],
            "ratings": [f.rating if f else None for f in feedback],
            "comments": [f.comment if f else None for f in feedback],
            "rated": [f.created_at if f else None for f in feedback],
            "current": plan.current + 1 if plan.current is not None else None,
        }
        (row,) = await self._db.write(_ADD_TREE, params)
        return SessionDTO.model_validate(dict(row))

    async def set_feedback(
        self, message_id: int, user_id: int, feedback: FeedbackInDTO | None
    ) -> FeedbackDTO | Role | None:
        params = {
            "message_id": message_id,
            "user_id": user_id,
            "rating": feedback.rating if feedback is not None else None,
            "comment": feedback.comment if feedback is not None else None,
        }
        row = first(await self._db.write(_FEEDBACK, params))
        if row is None:
            return None
        if row["role"] != "assistant" or row["feedback_rating"] is None:
            return cast(Role, row["role"])
        return FeedbackDTO(
            rating=row["feedback_rating"],
            comment=row["feedback_comment"],
            created_at=row["feedback_at"],
        )
