"""The SQLAlchemy unit of work: one use case's access to PostgreSQL.

The transaction rule, stated once (CONTRIBUTING.md repeats it):

- A statement outside `atomic()` is its own transaction (PostgreSQL autocommit). That is how a
  read, or a write that is one statement, costs exactly one round trip: no BEGIN, no COMMIT.
- Several writes that must stand or fall together go in `async with uow.atomic():`. The
  outermost block commits when it exits normally and rolls back when it raises; inner blocks
  join it, so a use case can be composed into a larger one (the idempotency runner does this).
- A unit of work runs at most one write outside `atomic()`: a second raises, so a use case
  that grows a second write cannot silently lose its atomicity.

The connection is checked out at the first statement and returned by `close()`; a unit of work
that never touches the database never takes one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import Executable, Result
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from app.core.metrics import waiting_for_connection
from app.persistence.repositories.idempotency import SqlIdempotencyRepository
from app.persistence.repositories.messages import SqlMessageRepository
from app.persistence.repositories.replies import SqlReplyRepository
from app.persistence.repositories.sessions import SqlSessionRepository
from app.persistence.repositories.users import SqlUserRepository

log = logging.getLogger(__name__)

Params = Mapping[str, Any] | None


class TransactionRuleBroken(RuntimeError):
    """A second write outside `atomic()`: a programming error, never a client's."""


class SqlUnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None
        self._depth = 0
        self._loose_writes = 0
        self.users = SqlUserRepository(self)
        self.sessions = SqlSessionRepository(self)
        self.messages = SqlMessageRepository(self)
        self.idempotency = SqlIdempotencyRepository(self)
        self.replies = SqlReplyRepository(self)

    # --- what repositories call ---------------------------------------------------------------

    async def read(self, statement: Executable, params: Params = None) -> Result[Any]:
        """Run a statement that changes nothing. Outside a transaction, a connection that broke
        (the server restarted, say) is replaced and the read tried once more: it is safe."""
        try:
            return await self._execute(statement, params)
        except DBAPIError as exc:
            if not exc.connection_invalidated or self._transaction is not None:
                raise
            log.info("database connection lost; retrying the read once: %r", exc.orig)
            await self._release()
            return await self._execute(statement, params)

    async def write(self, statement: Executable, params: Params = None) -> Result[Any]:
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
        if self._conn is None or self._transaction is None:
            raise TransactionRuleBroken("a savepoint needs an enclosing atomic() block")
        async with self._conn.begin_nested():
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
        conn = await self._connection()
        if conn.in_transaction():  # SQLAlchemy's bookkeeping of earlier autocommit statements
            await conn.commit()
        await conn.execution_options(isolation_level="READ COMMITTED")
        self._transaction = await conn.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            await self._end(commit=False)
            raise
        await self._end(commit=True)

    async def close(self) -> None:
        """Hand the connection back to the pool (rolling back anything left open)."""
        if self._transaction is not None:
            await self._end(commit=False)
        await self._release()

    # --- internals ----------------------------------------------------------------------------

    async def _execute(self, statement: Executable, params: Params) -> Result[Any]:
        conn = await self._connection()
        return await conn.execute(statement, dict(params) if params else None)

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            with waiting_for_connection():
                conn = await self._engine.connect()
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    async def _end(self, *, commit: bool) -> None:
        transaction, self._transaction, self._depth = self._transaction, None, 0
        assert transaction is not None
        assert self._conn is not None
        try:
            if commit:
                await transaction.commit()
            else:
                await transaction.rollback()
        finally:
            if not self._conn.invalidated:
                await self._conn.execution_options(isolation_level="AUTOCOMMIT")

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


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
