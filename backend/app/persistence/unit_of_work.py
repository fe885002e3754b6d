"""The unit of work: one use case's access to PostgreSQL.

The transaction rule, stated once (CONTRIBUTING.md repeats it):

- A statement outside `atomic()` is its own transaction (PostgreSQL autocommit). That is how a
  read, or a write that is one statement, costs exactly one round trip: no BEGIN, no COMMIT.
- Several writes that must stand or fall together go in `async with uow.atomic():`. The
  outermost block commits when it exits normally and rolls back when it raises; inner blocks
  join it, so a use case can be composed into a larger one (the idempotency runner does this).
- A unit of work runs at most one write outside `atomic()`: a second raises, so a use case
  that grows a second write cannot silently lose its atomicity.

A connection is taken from SQLAlchemy's pool for each statement outside `atomic()` (and given
back as soon as it has answered) or for a whole `atomic()` block: a unit of work never holds
one between its statements, whatever its caller awaits meanwhile, and needs no closing to give
it back. Statements run on the connection's asyncpg driver (compiled once by SQLAlchemy, see
`repositories/base.py`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
from asyncpg import Record
from asyncpg.transaction import Transaction
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from app.persistence.pool_gate import PoolGate
from app.persistence.repositories.base import Params, Sql
from app.persistence.repositories.idempotency import SqlIdempotencyRepository
from app.persistence.repositories.messages import SqlMessageRepository
from app.persistence.repositories.replies import SqlReplyRepository
from app.persistence.repositories.search import SqlSearchRepository
from app.persistence.repositories.sessions import SqlSessionRepository
from app.persistence.repositories.usage import SqlUsageRepository
from app.persistence.repositories.users import SqlUserRepository

log = logging.getLogger(__name__)


class TransactionRuleBroken(RuntimeError):
    """A second write outside `atomic()`: a programming error, never a client's."""


class SqlUnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._gate = PoolGate.of(engine)
        self._pooled: PoolProxiedConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._transaction: Transaction | None = None
        self._depth = 0
        self._loose_writes = 0
        self._lost = False
        self.users = SqlUserRepository(self)
        self.sessions = SqlSessionRepository(self)
        self.messages = SqlMessageRepository(self)
        self.idempotency = SqlIdempotencyRepository(self)
        self.replies = SqlReplyRepository(self)
        self.search = SqlSearchRepository(self)
        self.usage = SqlUsageRepository(self)

    # --- what repositories call ---------------------------------------------------------------

    async def read(self, statement: Sql, params: Params | None = None) -> list[Record]:
        """Run a statement that changes nothing. Outside a transaction, a connection that broke
        (the server restarted, say) is replaced and the read tried once more: it is safe."""
        try:
            return await self._execute(statement, params)
        except Exception as exc:
            if self._transaction is not None or not self._lost:
                raise
            log.info("database connection lost; retrying the read once: %r", exc)
            return await self._execute(statement, params)

    async def write(self, statement: Sql, params: Params | None = None) -> list[Record]:
        """Run a statement that changes data. Never retried: whether a write that lost its
        connection committed cannot be known (clients retry with an `Idempotency-Key`)."""
        if self._transaction is None:
            self._loose_writes += 1
            if self._loose_writes > 1:
                raise TransactionRuleBroken(
                    "a second write outside uow.atomic(): wrap the use case's writes in one "
                    "atomic() block so they commit together"
                )
        return await self._execute(statement, params)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        if self._driver is None or self._transaction is None:
            raise TransactionRuleBroken("a savepoint needs an enclosing atomic() block")
        async with self._driver.transaction():  # nested: asyncpg makes it a SAVEPOINT
            yield

    # --- what services call -------------------------------------------------------------------

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        driver = await self._connection()
        transaction = driver.transaction()
        await transaction.start()
        self._transaction, self._depth = transaction, 1
        try:
            yield
        except BaseException:
            await self._end(commit=False)
            raise
        await self._end(commit=True)

    async def close(self) -> None:
        """Roll back a transaction left open (its block was never exited) and hand its
        connection back; otherwise there is nothing to do."""
        if self._transaction is not None:
            await self._end(commit=False)
        await self._release()

    # --- internals ----------------------------------------------------------------------------

    async def _execute(self, statement: Sql, params: Params | None) -> list[Record]:
        driver = await self._connection()
        self._lost = False
        try:
            rows: list[Record] = await driver.fetch(statement.sql, *statement.args(params))
        except BaseException as exc:
            # An error the server answered with leaves the connection fine; a lost, timed out
            # or interrupted one (or the server ending the session) is never handed back.
            self._lost = (
                not isinstance(exc, asyncpg.PostgresError)
                or driver.is_closed()
                # A server that turned read-only (a demoted primary) is left for a new
                # connection, which `target_session_attrs` sends to the primary.
                or isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError)
            )
            if self._lost:
                await self._release(broken=exc)
            elif self._transaction is None:
                await self._release()
            raise
        if self._transaction is None:
            await self._release()
        return rows

    async def _connection(self) -> asyncpg.Connection:
        if self._driver is None:
            await self._gate.enter()
            try:
                pooled = await self._engine.raw_connection()
            except BaseException:
                self._gate.leave()
                raise
            self._pooled, self._driver = pooled, _driver_of(pooled.dbapi_connection)
        return self._driver

    async def _end(self, *, commit: bool) -> None:
        transaction, self._transaction, self._depth = self._transaction, None, 0
        if transaction is None or self._driver is None:
            return
        try:
            if commit:
                await transaction.commit()
            else:
                await transaction.rollback()
        except BaseException as exc:
            await self._release(broken=exc)
            raise
        await self._release()

    async def _release(self, broken: BaseException | None = None) -> None:
        pooled, self._pooled, self._driver = self._pooled, None, None
        self._transaction, self._depth = None, 0
        if pooled is None:
            return
        try:
            if broken is not None:
                await greenlet_spawn(pooled.invalidate, broken)
            else:
                await greenlet_spawn(pooled.close)
        finally:
            self._gate.leave()


def _driver_of(dbapi_connection: DBAPIConnection | None) -> asyncpg.Connection:
    driver: Any = getattr(dbapi_connection, "driver_connection", None)
    if not isinstance(driver, asyncpg.Connection):
        raise TypeError("the unit of work needs the asyncpg driver (postgresql+asyncpg URLs)")
    return driver


def unit_of_work_factory(
    engine: AsyncEngine,
) -> Callable[[], AbstractAsyncContextManager[SqlUnitOfWork]]:
    """Fresh units of work on demand, for flows made of several short steps (a reply's start,
    a request's dependencies): the connection goes back to the pool when the block ends."""

    @asynccontextmanager
    async def open_unit_of_work() -> AsyncIterator[SqlUnitOfWork]:
        uow = SqlUnitOfWork(engine)
        try:
            yield uow
        finally:
            await uow.close()

    return open_unit_of_work
