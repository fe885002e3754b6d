"""The benchmark's PostgreSQL: a given one, or a throw-away embedded server, migrated to head."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from sqlalchemy.engine import make_url

from app.cli import alembic_config
from app.core.database import async_url


@dataclass(frozen=True)
class BenchDatabase:
    #: SQLAlchemy URL (`postgresql+asyncpg://...`), as the app's DATABASE_URL.
    url: str
    #: True when we started the server ourselves (its data is thrown away afterwards).
    embedded: bool

    def connect_kwargs(self) -> dict[str, Any]:
        """The same target as keyword arguments for `asyncpg.connect` / `create_pool`."""
        parsed = make_url(self.url)
        kwargs: dict[str, Any] = {
            "host": str(parsed.query.get("host") or parsed.host or "localhost"),
            "port": int(str(parsed.query.get("port") or parsed.port or 5432)),
            "user": parsed.username or "postgres",
            "database": parsed.database or "postgres",
        }
        if parsed.password:
            kwargs["password"] = parsed.password
        return kwargs

    async def connect(self) -> asyncpg.Connection[Any]:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(**self.connect_kwargs())
        return conn


def _upgrade(url: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


@asynccontextmanager
async def bench_database(*, use_database_url: bool = True) -> AsyncIterator[BenchDatabase]:
    """BENCH_DATABASE_URL, else DATABASE_URL, else an embedded server in a temporary directory.

    A given database is only migrated (as the app would at start-up); the caller seeds under a
    subject of its own and deletes it afterwards. An embedded one is stopped and deleted even
    when the run is interrupted. `use_database_url=False`: ignore DATABASE_URL (the app's own
    database, maybe busy), for measurements that need a server nobody else writes to.
    """
    given = os.environ.get("BENCH_DATABASE_URL") or (
        os.environ.get("DATABASE_URL") if use_database_url else None
    )
    if given:
        db = BenchDatabase(url=async_url(given), embedded=False)
        await asyncio.to_thread(_upgrade, db.url)
        yield db
        return

    warnings.filterwarnings("ignore", module="platformdirs")
    from app.core.embedded_db import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix="agent-stack-bench-"))
    server = EmbeddedPostgres(workdir / "pgdata", database="agent_stack_bench")
    starting = asyncio.ensure_future(asyncio.to_thread(server.start))
    try:
        db = BenchDatabase(url=await asyncio.shield(starting), embedded=True)
        await asyncio.to_thread(_upgrade, db.url)
        yield db
    finally:
        # Interrupted while starting: let the start finish, or stop() would find nothing to stop
        # and leave a server running on a deleted directory.
        with contextlib.suppress(Exception):
            await asyncio.shield(starting)
        await asyncio.shield(asyncio.to_thread(server.stop))
        shutil.rmtree(workdir, ignore_errors=True)
