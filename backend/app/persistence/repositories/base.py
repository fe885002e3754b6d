"""Shared pieces of the repositories: how a statement is written, and how it reaches the
database."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from asyncpg import Record
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]

Params = Mapping[str, Any]


class Sql:
    """One statement, written with `:named` parameters and compiled once, at import, by
    SQLAlchemy's compiler into asyncpg's `$n` form: per request only the arguments change.

    Statements are executed on the pooled connection's asyncpg driver (see unit_of_work.py):
    SQLAlchemy builds the engine, the pool and the schema, and compiles the SQL; the hot path
    does not pay for its execution layer, which cost twice the round trip's own CPU. Types the
    server cannot infer are cast in the SQL: `CAST(:ids AS bigint[])`."""

    __slots__ = ("names", "sql")

    def __init__(self, source: str) -> None:
        compiled = text(source).compile(dialect=_DIALECT)
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())

    def args(self, params: Params | None) -> list[Any]:
        if params is None:
            return []
        return [params[name] for name in self.names]

    def __repr__(self) -> str:
        return f"Sql({self.sql!r})"


class Statements(Protocol):
    """How a repository reaches the database: the unit of work it belongs to."""

    async def read(self, statement: Sql, params: Params | None = None) -> list[Record]: ...

    async def write(self, statement: Sql, params: Params | None = None) -> list[Record]: ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """Inside `atomic()`: a failure in this block undoes only the block."""
        ...


class Repository:
    """Repositories run statements in their unit of work; they never begin or commit."""

    def __init__(self, db: Statements) -> None:
        self._db = db


def first(rows: list[Record]) -> Record | None:
    return rows[0] if rows else None
