"""Which database failures mean "the database is unreachable" (retry later) rather than a bug."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.exc import (
    DBAPIError,
    EmulatedDBAPIException,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

_UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    ConnectionError,
    PoolTimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    # "terminating connection because of crash of another server process": the primary went
    # down hard (a killed server, an immediate shutdown before a failover).
    asyncpg.exceptions.CrashShutdownError,
    # A write reached a server that is (still, or again) a read-only standby: during a
    # failover, retrying shortly reaches the new primary.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A multi-host URL with target_session_attrs=read-write while no host is the primary yet
    # (a failover in progress: the standby is not promoted).
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached or dropped the connection."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return isinstance(exc.orig, _UNREACHABLE) or isinstance(cause, _UNREACHABLE)
    if isinstance(exc, EmulatedDBAPIException):
        # The asyncpg adapter's own DB-API error, raised untranslated when the pool opens a
        # connection ("the database system is shutting down" during a failover): the driver's
        # exception is its cause.
        return isinstance(exc.__cause__, _UNREACHABLE)
    return isinstance(exc, _UNREACHABLE)


#: Exception classes the API answers itself: 503 when `is_unavailable`, else a logged 500.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    SQLAlchemyError,
    EmulatedDBAPIException,
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)
