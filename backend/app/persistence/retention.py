"""The retention sweep: sessions idle longer than `RETENTION_DAYS`, and temporary sessions past
their `expires_at`, are deleted with their messages.

One process sweeps at a time: the sweep holds a PostgreSQL advisory lock (`pg_try_advisory_lock`
on a connection of its own, outside the pool); a process that cannot take it skips its turn.
It never holds up API requests: each batch is one short statement (its own transaction) that
skips locked rows, a pause follows every batch, and the pool's connections are never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from asyncpg import Record

from app.core.database import ConnectParams
from app.persistence.repositories.base import Params, Sql
from app.persistence.repositories.replies import LOCK_NAMESPACE
from app.persistence.repositories.retention import SqlRetentionRepository
from app.persistence.unit_of_work import TransactionRuleBroken

log = logging.getLogger(__name__)

#: The sweep's advisory lock: first key apart from the worker and usage keys.
RETENTION_LOCK = (LOCK_NAMESPACE + 2, 1)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    #: Sessions idle longer are deleted; None: idle sessions are kept forever.
    retention_days: int | None = None
    batch_size: int = 200
    pause_s: float = 0.05
    interval_s: float = 300.0


@dataclass(slots=True)
class SweepReport:
    """What one sweep deleted: sessions per batch, expired ones first."""

    expired: list[int] = field(default_factory=list)
    idle: list[int] = field(default_factory=list)

    @property
    def deleted(self) -> int:
        return sum(self.expired) + sum(self.idle)


class _Connection:
    """The repository's `Statements` on the sweep's own connection: each statement is its own
    (autocommit) transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def read(self, statement: Sql, params: Params | None = None) -> list[Record]:
        rows: list[Record] = await self._conn.fetch(statement.sql, *statement.args(params))
        return rows

    async def write(self, statement: Sql, params: Params | None = None) -> list[Record]:
        return await self.read(statement, params)

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[None]:
        # The unit of work's rule: a savepoint lives inside a transaction, and every statement
        # of the sweep is a transaction of its own.
        raise TransactionRuleBroken(
            "a savepoint needs an enclosing transaction; the sweep has none"
        )


class RetentionSweeper:
    def __init__(
        self,
        params: ConnectParams,
        policy: RetentionPolicy,
        *,
        connect_timeout_s: float = 5.0,
        statement_timeout_ms: int = 15_000,
    ) -> None:
        self._params = params
        self.policy = policy
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = statement_timeout_ms

    async def sweep(self) -> SweepReport | None:
        """Delete every due session, batch by batch; None when another process is sweeping."""
        conn = await asyncpg.connect(
            **self._params.asyncpg_kwargs(),
            timeout=self._connect_timeout_s,
            server_settings={
                "application_name": "agent-stack-retention",
                "statement_timeout": str(self._statement_timeout_ms),
            },
        )
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *RETENTION_LOCK):
                return None
            try:
                return await self._sweep(SqlRetentionRepository(_Connection(conn)))
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", *RETENTION_LOCK)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    async def _sweep(self, retention: SqlRetentionRepository) -> SweepReport:
        report = SweepReport()
        batch = self.policy.batch_size
        await self._batches(lambda: retention.delete_expired(batch), report.expired)
        days = self.policy.retention_days
        if days is not None:
            idle_before = datetime.now(UTC) - timedelta(days=days)
            await self._batches(lambda: retention.delete_idle(idle_before, batch), report.idle)
        return report

    async def _batches(self, delete: Callable[[], Awaitable[int]], counts: list[int]) -> None:
        while True:
            deleted = await delete()
            if deleted:
                counts.append(deleted)
            if deleted < self.policy.batch_size:
                return
            await asyncio.sleep(self.policy.pause_s)

    async def run(self) -> None:
        """Sweep every `interval_s` (with some jitter, so processes started together spread
        out), until cancelled; a failed sweep is logged and tried again next time."""
        while True:
            await asyncio.sleep(self.policy.interval_s * random.uniform(0.9, 1.1))  # noqa: S311 (jitter)
            try:
                report = await self.sweep()
            except Exception:
                log.exception("retention sweep failed; trying again next time")
                continue
            if report is not None and report.deleted:
                log.info(
                    "retention sweep deleted %d sessions (%d expired, %d idle)",
                    report.deleted,
                    sum(report.expired),
                    sum(report.idle),
                )
