"""Engine and session factory: the one place that knows how we talk to PostgreSQL."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.settings import Settings


def async_url(url: str) -> str:
    """Normalise `postgres://` / `postgresql://` URLs to the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(settings: Settings, url: str | None = None) -> AsyncEngine:
    """Build the pooled engine.

    Timeouts are deliberately short: when the database is unreachable a request must fail fast
    with a 503 rather than hang, and `pool_pre_ping` lets the pool heal by itself once it is back.
    """
    target = url or settings.database_url
    if not target:
        raise RuntimeError("DATABASE_URL is not set and no embedded database was started")
    return create_async_engine(
        async_url(target),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=settings.db_pool_recycle_s,
        pool_pre_ping=True,
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


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
