"""Shared pieces of the SQLAlchemy repositories."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy import Executable, Result


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
