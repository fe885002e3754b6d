"""Shared pieces of the SQLAlchemy repositories."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Executable, Result, Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from app.domain.pagination import PageRequest

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


class Statements(Protocol):
    """How a repository reaches the database: the unit of work it belongs to."""

    async def read(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]: ...

    async def write(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]: ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """Inside `atomic()`: a failure in this block undoes only the block."""
        ...


class Repository:
    """Repositories run statements in their unit of work; they never begin or commit."""

    def __init__(self, db: Statements) -> None:
        self._db = db


def keyset(
    stmt: S,
    page: PageRequest,
    at: ColumnElement[Any] | InstrumentedAttribute[Any],
    row_id: ColumnElement[Any] | InstrumentedAttribute[Any],
    *,
    descending: bool,
) -> S:
    """Order by `(at, id)` (a total order), continue after the cursor, then apply skip/limit."""
    if page.after is not None:
        cursor = tuple_(page.after.at, page.after.id)
        key = tuple_(at, row_id) < cursor if descending else tuple_(at, row_id) > cursor
        stmt = stmt.where(key)
    order = (at.desc(), row_id.desc()) if descending else (at.asc(), row_id.asc())
    return stmt.order_by(*order).offset(page.skip).limit(page.limit)
