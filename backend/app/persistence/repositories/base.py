"""Shared pieces of the SQLAlchemy repositories."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.domain.pagination import PageRequest

S = TypeVar("S", bound=Select[Any])


class Repository:
    """Repositories read and flush within the caller's transaction; they never commit."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session


def keyset(
    stmt: S,
    page: PageRequest,
    at: InstrumentedAttribute[Any],
    row_id: InstrumentedAttribute[Any],
    *,
    descending: bool,
) -> S:
    """Order by `(at, id)` (a total order), continue after the cursor, then apply skip/limit."""
    if page.after is not None:
        key: ColumnElement[bool]
        cursor = tuple_(page.after.at, page.after.id)
        key = tuple_(at, row_id) < cursor if descending else tuple_(at, row_id) > cursor
        stmt = stmt.where(key)
    order = (at.desc(), row_id.desc()) if descending else (at.asc(), row_id.asc())
    return stmt.order_by(*order).offset(page.skip).limit(page.limit)
