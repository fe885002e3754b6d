"""Usage of the language model, from the replies' own columns, and the per-user lock that
makes the daily token limit exact across processes.

A reply this service generated carries the key of the process that generated it
(`worker_key`): messages posted by clients, and a fork's copies of replies, have none, so they
are never counted (a fork would count its replies twice). Every statement reads one user's rows
through `(user_id, created_at)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.domain.dtos import UsageGrouping
from app.domain.ports import UsageRow
from app.persistence.repositories.base import Repository, Sql, first
from app.persistence.repositories.replies import LOCK_NAMESPACE

#: Second-level key space of the usage locks (first key: `LOCK_NAMESPACE + 1`, apart from the
#: worker keys). User ids beyond 2^31 share a lock with another user's: they wait for each
#: other a little, never count each other's usage.
USAGE_LOCK_NAMESPACE = LOCK_NAMESPACE + 1

_GENERATED = "m.worker_key IS NOT NULL"

_KEYS: dict[UsageGrouping, str] = {
    "day": "to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "model": "coalesce(m.model, '')",
    "session": "CAST(m.session_id AS text)",
}


def _report_sql(key: str) -> Sql:
    return Sql(
        f"""
        WITH expired AS (
            SELECT coalesce(array_agg(id), '{{}}') AS ids FROM sessions
            WHERE user_id = :user_id AND expires_at <= now()
        )
        SELECT {key} AS key, coalesce(sum(m.input_tokens), 0) AS input_tokens,
               coalesce(sum(m.tokens), 0) AS output_tokens, count(*) AS replies
        FROM expired, messages AS m
        WHERE m.user_id = :user_id AND m.created_at >= :start AND m.created_at < :end
          AND {_GENERATED} AND m.session_id <> ALL (expired.ids)
        GROUP BY 1 ORDER BY 1
        """
    )


_REPORT = {grouping: _report_sql(key) for grouping, key in _KEYS.items()}
_HOLD = Sql("SELECT pg_advisory_xact_lock(:namespace, CAST(:user_id % 2147483647 AS integer))")
_USED = Sql(
    f"""
    SELECT coalesce(sum(CASE WHEN m.status = 'streaming' THEN 1
                             ELSE m.input_tokens + m.tokens END), 0) AS used
    FROM messages AS m
    WHERE m.user_id = :user_id AND m.created_at >= :since AND {_GENERATED}
    """
)


class SqlUsageRepository(Repository):
    async def report(
        self, user_id: int, start: datetime, end: datetime, group_by: UsageGrouping
    ) -> Sequence[UsageRow]:
        params = {"user_id": user_id, "start": start, "end": end}
        rows = await self._db.read(_REPORT[group_by], params)
        return [
            UsageRow(row["key"], row["input_tokens"], row["output_tokens"], row["replies"])
            for row in rows
        ]

    async def hold(self, user_id: int) -> None:
        await self._db.read(_HOLD, {"namespace": USAGE_LOCK_NAMESPACE, "user_id": user_id})

    async def used_since(self, user_id: int, since: datetime) -> int:
        row = first(await self._db.read(_USED, {"user_id": user_id, "since": since}))
        return int(row["used"]) if row is not None else 0
