"""The reply runtime's SQL: progress chunks, final states, cancel flags, and the orphan sweep.

Each method is one statement, so each is one round trip and its own transaction; NOTIFYs are
sent from the statement, so followers are woken exactly when the data they read is committed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from asyncpg import Record

from app.domain.dtos import MessageDTO, MessageStatus, ToolCall
from app.domain.reply_runtime import ReplyOutcome, UsageRecord
from app.domain.services.replies import UNSTORABLE_ERROR
from app.persistence.channels import REPLY_CANCEL, REPLY_PROGRESS, notify_ids_sql
from app.persistence.repositories.base import Repository, Sql, first
from app.persistence.repositories.message_columns import FIELDS, message_fields
from app.persistence.repositories.message_columns import message_columns as columns

CHUNKS_KEY = "pk_reply_chunks"
#: First key of our two-key advisory locks, so they cannot clash with other applications'.
LOCK_NAMESPACE = 0x4C4C4D31

_PERSISTED = (
    "(SELECT string_agg(c.text, '' ORDER BY c.start_offset) FROM reply_chunks AS c "
    "WHERE c.message_id = m.id)"
)

# Append each reply's new text as a row (never rewriting what is stored), for the replies still
# streaming; report every live reply's state, so a cancel flag is seen even when its NOTIFY was
# missed. A chunk already there (a commit whose answer was lost) is skipped by NOT EXISTS, not
# by ON CONFLICT: a speculative insertion logs one more record per row (Heap/HEAP_CONFIRM). If
# that commit is still in flight, the primary key waits for it and refuses the row: see
# `ChunkInFlight`.
_APPEND = Sql(
    f"""
    WITH batch AS (
        SELECT * FROM unnest(CAST(:chunk_ids AS bigint[]), CAST(:starts AS integer[]),
                             CAST(:texts AS text[])) AS b(message_id, start_offset, text)
    ), appended AS (
        INSERT INTO reply_chunks (message_id, start_offset, text)
        SELECT b.message_id, b.start_offset, b.text FROM batch AS b
        JOIN messages AS m ON m.id = b.message_id AND m.status = 'streaming'
        WHERE NOT EXISTS (SELECT 1 FROM reply_chunks AS c
                          WHERE c.message_id = b.message_id AND c.start_offset = b.start_offset)
        RETURNING message_id
    ), notified AS ({notify_ids_sql("channel", "appended", "message_id")})
    SELECT m.id, m.status, m.cancel_requested,
           m.id IN (SELECT message_id FROM appended) AS appended,
           (SELECT count(*) FROM notified) AS notifications
    FROM messages AS m WHERE m.id = ANY(CAST(:live_ids AS bigint[]))
    """
)
_PERSISTED_ENDS = Sql(
    "SELECT message_id, max(start_offset + char_length(text)) AS persisted FROM reply_chunks "
    "WHERE message_id = ANY(CAST(:ids AS bigint[])) GROUP BY message_id"
)


# The usage of the replies a statement ends, into the ledger (`reply_usage`), by that statement:
# a reply is in the ledger exactly when it is no longer streaming. `source` returns the ended
# rows with `owner_id`, `worker_key` and `counted_inputs` (the input tokens to count: see
# `ReplyOutcome.counted_input_tokens`); replies not generated here (no worker key) are not
# usage. A reply ends once (`status = 'streaming'` guards every end), so the conflict clause
# never fires: it is there so that a bug could never fail a whole batch of final states.
def _record_usage(source: str) -> str:
    return f"""
        INSERT INTO reply_usage (message_id, user_id, session_id, model, created_at,
                                 input_tokens, output_tokens)
        SELECT id, owner_id, session_id, model, created_at, counted_inputs, tokens
        FROM {source} WHERE worker_key IS NOT NULL
        ON CONFLICT (message_id) DO NOTHING"""


_USAGE_COLUMNS = "m.user_id AS owner_id, m.worker_key"

# The final states, batched like progress: under load one statement ends many replies. A NULL
# content means "what was persisted" (the text could not be stored as it was); a NULL model, the
# one recorded when the reply started.
_FINISH = Sql(
    f"""
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:contents AS text[]),
            CAST(:tokens AS integer[]), CAST(:inputs AS integer[]), CAST(:errors AS text[]),
            CAST(:finishes AS text[]), CAST(:models AS text[]), CAST(:calls AS text[]),
            CAST(:counted AS integer[])
        ) AS v(id, status, content, tokens, input_tokens, error, finish_reason, model, calls,
               counted_inputs)
    ), finished AS (
        UPDATE messages AS m
        SET status = v.status,
            content = coalesce(v.content, m.content || coalesce({_PERSISTED}, '')),
            tokens = v.tokens, input_tokens = v.input_tokens, error = v.error,
            finish_reason = v.finish_reason, model = coalesce(v.model, m.model),
            tool_calls = CAST(v.calls AS jsonb), finished_at = clock_timestamp()
        FROM v WHERE m.id = v.id AND m.status = 'streaming'
        RETURNING {", ".join(f"m.{field}" for field in FIELDS)}, {_USAGE_COLUMNS},
                  v.counted_inputs
    ), folded AS (
        DELETE FROM reply_chunks AS c USING finished WHERE c.message_id = finished.id
    ), recorded AS ({_record_usage("finished")}
    ), notified AS ({notify_ids_sql("channel", "finished", "id")})
    SELECT {", ".join(f"finished.{field}" for field in FIELDS)},
           (SELECT count(*) FROM notified) AS notifications
    FROM finished
    """
)
# A reply deleted while it streamed: its usage goes in the ledger all the same. The owner's row
# is locked (KEY SHARE) first: an account being erased makes this wait and then find no owner,
# and an erasure that comes after finds the row (`UserService.erase`). An end already recorded
# (the orphan sweep failed this reply, thinking its process dead) keeps the larger counts.
_RECORD_GONE = Sql(
    """
    WITH owner AS (SELECT id FROM users WHERE id = :user_id FOR KEY SHARE)
    INSERT INTO reply_usage (message_id, user_id, session_id, model, created_at, input_tokens,
                             output_tokens)
    SELECT CAST(:message_id AS bigint), owner.id, CAST(:session_id AS bigint),
           CAST(:model AS text), CAST(:created_at AS timestamptz), CAST(:input_tokens AS integer),
           CAST(:output_tokens AS integer)
    FROM owner
    ON CONFLICT (message_id) DO UPDATE
    SET input_tokens = greatest(reply_usage.input_tokens, excluded.input_tokens),
        output_tokens = greatest(reply_usage.output_tokens, excluded.output_tokens)
    """
)
# What a follower in another process reads: the text after its offset, and whether it ended.
_TAIL = Sql(
    """
    SELECT m.status, CASE WHEN m.status = 'streaming'
        THEN (SELECT string_agg(substr(c.text, greatest(:offset - c.start_offset, 0) + 1), ''
                                ORDER BY c.start_offset)
              FROM reply_chunks AS c
              WHERE c.message_id = m.id AND c.start_offset + char_length(c.text) > :offset)
        ELSE substr(m.content, :offset + 1) END AS tail
    FROM messages AS m WHERE m.id = :id
    """
)
_GET = Sql(f"SELECT {columns('m')} FROM messages AS m WHERE m.id = :id")
_CANCEL = Sql(
    """
    WITH flagged AS (
        UPDATE messages SET cancel_requested = true WHERE id = :id AND status = 'streaming'
        RETURNING id
    )
    SELECT id, pg_notify(:channel, id::text) FROM flagged
    """
)
# Streaming replies whose process is gone: that process held a session advisory lock on its
# worker key while it lived, so a key we can lock has no owner. The CTE calls a volatile
# function, so PostgreSQL runs it once, as written: one try-lock per distinct key (released when
# this statement's transaction ends). Our own key is held by our listener session, so a pooled
# session never gets it. The partial text is kept. Chunks have no foreign key (its check would
# lock the message for every row appended): those whose message is gone or no longer streaming
# (an append that committed after a concurrent delete or final state) are deleted here.
_SWEEP = Sql(
    f"""
    WITH orphaned AS (
        SELECT key FROM (
            SELECT DISTINCT worker_key AS key FROM messages WHERE status = 'streaming'
        ) AS keys
        WHERE key IS NULL OR pg_try_advisory_xact_lock(:namespace, key)
    ), failed AS (
        UPDATE messages AS m
        SET status = 'failed', error = :error, finish_reason = 'error',
            finished_at = clock_timestamp(), content = m.content || coalesce({_PERSISTED}, '')
        WHERE m.status = 'streaming'
          AND (m.worker_key IS NULL
               OR m.worker_key IN (SELECT key FROM orphaned WHERE key IS NOT NULL))
        RETURNING m.id, m.session_id, m.model, m.created_at, m.input_tokens AS counted_inputs,
                  m.tokens, {_USAGE_COLUMNS}
    ), folded AS (
        DELETE FROM reply_chunks AS c USING failed WHERE c.message_id = failed.id
    ), recorded AS ({_record_usage("failed")}
    ), stray AS (
        DELETE FROM reply_chunks AS c WHERE NOT EXISTS (
            SELECT 1 FROM messages AS m WHERE m.id = c.message_id AND m.status = 'streaming')
    ), notified AS ({notify_ids_sql("channel", "failed", "id")})
    SELECT failed.id, (SELECT count(*) FROM notified) AS notifications FROM failed
    """
)


def _calls(calls: Sequence[ToolCall]) -> str | None:
    return json.dumps([call.model_dump(mode="json") for call in calls]) if calls else None


def _counted_inputs(outcome: ReplyOutcome | None) -> int:
    if outcome is None:
        return 0
    counted = outcome.counted_input_tokens
    return outcome.input_tokens if counted is None else counted


def _message(row: Record) -> MessageDTO:
    return MessageDTO.model_validate(message_fields(row))


class ChunkInFlight(Exception):
    """An appended chunk collided with the same chunk stored by a statement still running when
    this one began (a commit whose answer was lost). That statement has ended by now (the key
    waited for it): the same append, run again, sees its chunk and skips it."""


@dataclass(frozen=True, slots=True)
class Chunk:
    message_id: int
    start: int
    text: str


@dataclass(frozen=True, slots=True)
class ReplyState:
    """A live reply as the database sees it after an append."""

    message_id: int
    status: MessageStatus
    cancel_requested: bool
    appended: bool


class SqlReplyRepository(Repository):
    async def append(self, chunks: Sequence[Chunk], live_ids: Sequence[int]) -> list[ReplyState]:
        params = {
            "chunk_ids": [chunk.message_id for chunk in chunks],
            "starts": [chunk.start for chunk in chunks],
            "texts": [chunk.text for chunk in chunks],
            "live_ids": list(live_ids),
            "channel": REPLY_PROGRESS,
        }
        try:
            rows = await self._db.write(_APPEND, params)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == CHUNKS_KEY:
                raise ChunkInFlight from exc
            raise
        return [
            ReplyState(row["id"], row["status"], row["cancel_requested"], row["appended"])
            for row in rows
        ]

    async def persisted_ends(self, message_ids: Sequence[int]) -> dict[int, int]:
        rows = await self._db.read(_PERSISTED_ENDS, {"ids": list(message_ids)})
        return {row["message_id"]: row["persisted"] for row in rows}

    async def finish(
        self, outcomes: Sequence[tuple[int, ReplyOutcome | None]]
    ) -> dict[int, MessageDTO]:
        """Save final states; an outcome of None keeps the persisted text and fails the reply
        (used when the reply's own text cannot be stored)."""
        params = {
            "ids": [message_id for message_id, _ in outcomes],
            "statuses": [o.status if o else "failed" for _, o in outcomes],
            "contents": [o.content if o else None for _, o in outcomes],
            "tokens": [o.tokens if o else 0 for _, o in outcomes],
            "inputs": [o.input_tokens if o else 0 for _, o in outcomes],
            "errors": [o.error if o else UNSTORABLE_ERROR for _, o in outcomes],
            "finishes": [o.finish_reason if o else "error" for _, o in outcomes],
            "models": [o.model if o else None for _, o in outcomes],
            "calls": [_calls(o.tool_calls) if o else None for _, o in outcomes],
            "counted": [_counted_inputs(o) for _, o in outcomes],
            "channel": REPLY_PROGRESS,
        }
        rows = await self._db.write(_FINISH, params)
        return {row["id"]: _message(row) for row in rows}

    async def tail(self, message_id: int, offset: int) -> tuple[MessageStatus, str] | None:
        row = first(await self._db.read(_TAIL, {"id": message_id, "offset": offset}))
        return (row["status"], row["tail"] or "") if row is not None else None

    async def get(self, message_id: int) -> MessageDTO | None:
        row = first(await self._db.read(_GET, {"id": message_id}))
        return _message(row) if row is not None else None

    async def request_cancel(self, message_id: int) -> bool:
        return bool(await self._db.write(_CANCEL, {"id": message_id, "channel": REPLY_CANCEL}))

    async def record_usage(self, usage: UsageRecord) -> None:
        await self._db.write(_RECORD_GONE, dataclasses.asdict(usage))

    async def fail_orphans(self, error: str) -> list[int]:
        params = {"namespace": LOCK_NAMESPACE, "error": error, "channel": REPLY_PROGRESS}
        return [row["id"] for row in await self._db.write(_SWEEP, params)]
