"""Where the tests' PostgreSQL comes from: TEST_DATABASE_URL, else a throw-away embedded server."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.cli import alembic_config
from app.core.database import async_url
from app.core.embedded_db import EmbeddedPostgres
from app.persistence.models import Base

#: Every table of the schema (a new one is emptied between tests without being listed here).
TABLES = tuple(table.name for table in Base.metadata.sorted_tables)


@contextmanager
def test_database_url() -> Iterator[str]:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield async_url(configured)
        return
    workdir = Path(tempfile.mkdtemp(prefix="agent-stack-test-"))
    server = EmbeddedPostgres(workdir / "pgdata", database="agent_stack_test")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def alembic(url: str) -> Config:
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    return cfg


async def upgrade(url: str, revision: str = "head") -> None:
    # Alembic's env.py runs its own event loop: keep it off the test loop.
    await asyncio.to_thread(command.upgrade, alembic(url), revision)


async def downgrade(url: str, revision: str) -> None:
    await asyncio.to_thread(command.downgrade, alembic(url), revision)


async def upgrade_over(url: str, before: str, seed: Sequence[str], revision: str) -> None:
    """Migrate to `before`, store `seed` there (one transaction), then migrate to `revision`:
    how a data migration meets the rows it must carry over."""
    await upgrade(url, before)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in seed:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    await upgrade(url, revision)


#: PostgreSQL's "deadlock detected".
DEADLOCK = "40P01"


async def truncate(engine: AsyncEngine, attempts: int = 5) -> None:
    """Empty every table. A server of the previous test may still be ending its replies: its
    statements lock tables in their own order, so the TRUNCATE (which locks them all) can be
    the victim of a deadlock with one; it then runs again."""
    statement = text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    for attempt in range(attempts):
        try:
            async with engine.begin() as conn:
                await conn.execute(statement)
            return
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != DEADLOCK or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.1)
