"""Engine and database URLs: the one place that knows how we talk to PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core import metrics
from app.core.settings import Settings


def async_url(url: str) -> str:
    """Normalise `postgres://` / `postgresql://` URLs to the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class ConnectParams:
    """Where a URL points, in the terms libpq tools and asyncpg use. A socket directory or a
    multi-host list given as `?host=` wins over the URL's host part, as libpq has it."""

    host: str
    port: int
    user: str
    password: str | None
    database: str

    @classmethod
    def from_url(cls, url: str | URL) -> ConnectParams:
        parsed = make_url(url) if isinstance(url, str) else url
        query_host = parsed.query.get("host")
        query_port = parsed.query.get("port")
        host = query_host if isinstance(query_host, str) else parsed.host
        port = query_port if isinstance(query_port, str) else parsed.port
        return cls(
            host=host or "localhost",
            port=int(port or 5432),
            user=parsed.username or "postgres",
            password=parsed.password,
            database=parsed.database or "postgres",
        )

    def asyncpg_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "database": self.database,
        }
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs

    def libpq_env(self) -> dict[str, str]:
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """Build the pooled engine.

    No `pool_pre_ping`: it costs three round trips per checkout with asyncpg. A connection the
    server closed while it sat in the pool is noticed for free (asyncpg sees the socket close)
    and replaced at checkout; one that breaks mid-statement is invalidated by SQLAlchemy with
    the rest of the pool, and the unit of work retries a read once. Timeouts are short: an
    unreachable database must answer 503 quickly, never hang a request.
    """
    target = url or settings.database_url
    if not target:
        raise RuntimeError("DATABASE_URL is not set and no embedded database was started")
    engine = create_async_engine(
        async_url(target),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=settings.db_pool_recycle_s,
        pool_pre_ping=False,
        # Last in, first out: a quiet period reuses the same few connections (their prepared
        # statements are warm) and lets the rest idle out, instead of cycling through all.
        pool_use_lifo=True,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            "command_timeout": settings.db_statement_timeout_ms / 1000 + 5
            if settings.db_statement_timeout_ms
            else None,
            "server_settings": {
                "application_name": "agent-stack",
                "statement_timeout": str(settings.db_statement_timeout_ms),
            },
        },
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed_connection)
    event.listen(engine.sync_engine.pool, "checkout", _count_checkout)
    event.listen(engine.sync_engine.pool, "checkin", _count_checkin)
    return engine


def _count_checkout(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    metrics.DB_POOL_IN_USE.inc()


def _count_checkin(_dbapi_connection: Any, _record: Any) -> None:
    metrics.DB_POOL_IN_USE.dec()


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling at no cost: the pool retries with a fresh connection
    when the driver already knows this one is closed (server restart, idle timeout)."""
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the pooled connection was closed by the server")
