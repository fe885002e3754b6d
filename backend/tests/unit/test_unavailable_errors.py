"""Which database errors are "unavailable" (503 with Retry-After) rather than a 500."""

from __future__ import annotations

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from app.persistence.errors import INFRASTRUCTURE_ERRORS, is_unavailable


def _adapted(cause: BaseException) -> Exception:
    """What SQLAlchemy's asyncpg adapter raises when the pool cannot open a connection."""
    try:
        try:
            raise cause
        except BaseException as error:
            raise AsyncAdapt_asyncpg_dbapi.Error(str(error)) from error  # type: ignore[no-untyped-call]
    except Exception as adapted:
        return adapted


def test_a_server_shutting_down_while_the_pool_connects_is_unavailable() -> None:
    shutting_down = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    error = _adapted(shutting_down)
    assert isinstance(error, INFRASTRUCTURE_ERRORS)
    assert is_unavailable(error)


def test_an_adapter_error_of_another_cause_is_not_unavailable() -> None:
    error = _adapted(asyncpg.exceptions.UndefinedTableError("no such table"))
    assert isinstance(error, INFRASTRUCTURE_ERRORS)
    assert not is_unavailable(error)


def test_failover_errors_are_unavailable() -> None:
    assert is_unavailable(asyncpg.exceptions.CrashShutdownError("crash of another process"))
    assert is_unavailable(asyncpg.exceptions.ReadOnlySQLTransactionError("read-only"))
    assert is_unavailable(asyncpg.exceptions.TargetServerAttributeNotMatched("no primary"))
