"""The retention sweep's SQL: delete a small batch of sessions that are due, with their
messages (database cascade), and keep their owners' session counters exact.

Rows another transaction holds are skipped (`FOR UPDATE SKIP LOCKED`): the sweep never waits
for a request, and a session being written to now is not idle anyway.
"""

from __future__ import annotations

from datetime import datetime

from app.persistence.repositories.base import Repository, Sql, first


def _batch_sql(due: str) -> Sql:
    # The owners' rows are taken with SKIP LOCKED too: an owner being erased (its row locked,
    # the cascade about to wait for these sessions) is left for the next sweep, never waited
    # for, so the two cannot deadlock.
    return Sql(
        f"""
        WITH doomed AS (
            SELECT id, user_id FROM sessions WHERE {due} LIMIT :batch FOR UPDATE SKIP LOCKED
        ), owners AS (
            SELECT id FROM users WHERE id IN (SELECT user_id FROM doomed)
            FOR NO KEY UPDATE SKIP LOCKED
        ), gone AS (
            DELETE FROM sessions
            WHERE id IN (SELECT id FROM doomed WHERE user_id IN (SELECT id FROM owners))
            RETURNING user_id
        ), counted AS (
            UPDATE users SET session_count = session_count - owned.n
            FROM (SELECT user_id, count(*) AS n FROM gone GROUP BY user_id) AS owned
            WHERE users.id = owned.user_id
        )
        SELECT count(*) AS deleted FROM gone
        """
    )


#: Temporary chats past their time (the partial index on `expires_at`).
_EXPIRED = _batch_sql("expires_at <= now()")
#: Sessions idle since before the cutoff (the index on `updated_at`).
_IDLE = _batch_sql("updated_at < :idle_before")


class SqlRetentionRepository(Repository):
    async def delete_expired(self, batch: int) -> int:
        """Delete up to `batch` expired sessions; how many went."""
        row = first(await self._db.write(_EXPIRED, {"batch": batch}))
        return int(row["deleted"]) if row is not None else 0

    async def delete_idle(self, idle_before: datetime, batch: int) -> int:
        """Delete up to `batch` sessions last active before `idle_before`; how many went."""
        row = first(await self._db.write(_IDLE, {"batch": batch, "idle_before": idle_before}))
        return int(row["deleted"]) if row is not None else 0
