from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
async def scratch_url(engine: AsyncEngine, database_url: str) -> AsyncIterator[str]:
    """A database of its own, dropped afterwards: data migrations are tested from any revision
    without touching the suite's database."""
    name = f"agent_stack_migration_{uuid.uuid4().hex[:8]}"
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        try:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        except DBAPIError as exc:
            # A skip would hide an untested migration behind a green run: fail loudly instead.
            pytest.fail(
                f"cannot create the scratch database {name!r} for the migration round trip "
                f"(the test database role needs CREATEDB): {exc}"
            )
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
