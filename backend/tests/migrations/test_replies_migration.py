"""The replies revision applies and reverts cleanly, data included, on a scratch database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.support.database import downgrade, upgrade

BEFORE_REPLIES = "bd802d9743a4"


@pytest.fixture
async def scratch_url(engine: AsyncEngine, database_url: str) -> AsyncIterator[str]:
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


async def test_replies_revision_round_trips(scratch_url: str) -> None:
    await upgrade(scratch_url, BEFORE_REPLIES)
    scratch = create_async_engine(scratch_url)
    try:
        async with scratch.begin() as conn:
            for statement in (
                "INSERT INTO users (auth0_id) VALUES ('a')",
                "INSERT INTO sessions (user_id, title) VALUES (1, 't')",
                "INSERT INTO messages (session_id, role, content) VALUES (1, 'user', 'hi')",
            ):
                await conn.execute(text(statement))
        await upgrade(scratch_url, "head")
        async with scratch.begin() as conn:
            old = (await conn.execute(text("SELECT status, input_tokens FROM messages"))).one()
            assert tuple(old) == ("completed", 0)
            await conn.execute(
                text(
                    "INSERT INTO messages (session_id, role, content, status) "
                    "VALUES (1, 'assistant', '', 'failed')"
                )
            )
        async with scratch.begin() as conn:
            with pytest.raises(DBAPIError, match="ck_messages_content_not_empty"):
                await conn.execute(
                    text("INSERT INTO messages (session_id, role, content) VALUES (1, 'user', '')")
                )
        await scratch.dispose()
        await downgrade(scratch_url, BEFORE_REPLIES)
        async with scratch.connect() as conn:
            contents = (await conn.execute(text("SELECT content FROM messages ORDER BY id"))).all()
        assert [row.content for row in contents] == ["hi", "(no reply)"]
        await scratch.dispose()
        await upgrade(scratch_url, "head")
    finally:
        await scratch.dispose()
