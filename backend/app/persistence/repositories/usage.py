"""Usage of the language model, from the ledger of ended replies (`reply_usage`), and the
per-user lock that makes the daily token limit exact across processes.

The ledger holds the replies this service generated, each written by the statement that ends it
(see `repositories/replies.py`); messages posted by clients, a fork's copies and imports are not
usage. It outlives conversations: deleting one does not give its tokens back. Every statement
reads one user's rows through `(user_id, created_at)`.
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

_KEYS: dict[UsageGrouping, str] = {
    "day": "to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "model": "coalesce(u.model, '')",
    "session": "CAST(u.session_id AS text)",
}


def _report_sql(key: str) -> Sql:
    return Sql(
        f"""
        SELECT {key} AS key, coalesce(sum(u.input_tokens), 0) AS input_tokens,
               coalesce(sum(u.output_tokens), 0) AS output_tokens, count(*) AS replies
        FROM reply_usage AS u
        WHERE u.user_id = :user_id AND u.created_at >= :start AND u.created_at < :end
        GROUP BY 1 ORDER BY 1
        """
    )


_REPORT = {grouping: _report_sql(key) for grouping, key in _KEYS.items()}
_HOLD = Sql("SELECT pg_advisory_xact_lock(:namespace, CAST(:user_id % 2147483647 AS integer))")
# One snapshot: a reply is either still streaming (a message, one token) or ended (in the
# ledger), never both nor neither, since one statement ends it and records it.
_USED = Sql(
    """
    SELECT (SELECT coalesce(sum(u.input_tokens + u.output_tokens), 0) FROM reply_usage AS u
            WHERE u.user_id = :user_id AND u.created_at >= :since)
         + (SELECT count(*) FROM messages AS m
            WHERE m.user_id = :user_id AND m.created_at >= :since AND m.status = 'streaming'
              AND m.worker_key IS NOT NULL) AS used
    """
)
_ERASE = Sql("DELETE FROM reply_usage WHERE user_id = :user_id")


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

    async def erase(self, user_id: int) -> None:
        await self._db.write(_ERASE, {"user_id": user_id})
