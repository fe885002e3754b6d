"""Migrations are code: upgrade → downgrade → upgrade on a real database, and no drift."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.database import alembic, downgrade, upgrade


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_downgrade_upgrade(migrated_url: str, engine: AsyncEngine) -> None:
    script = ScriptDirectory.from_config(alembic(migrated_url))
    assert len(script.get_heads()) == 1, "migrations must form a single line"
    revisions = list(script.walk_revisions())

    # Step down one revision at a time, then all the way, then back up: every step is reversible.
    for _ in revisions:
        await downgrade(migrated_url, "-1")
    assert await _tables(engine) == {"alembic_version"}
    await upgrade(migrated_url)
    assert {"users", "sessions", "messages"} <= await _tables(engine)
    await downgrade(migrated_url, "base")
    await upgrade(migrated_url)


async def test_models_and_migrations_agree(migrated_url: str) -> None:
    # `alembic check` raises if autogenerate would emit any operation.
    await asyncio.to_thread(command.check, alembic(migrated_url))
