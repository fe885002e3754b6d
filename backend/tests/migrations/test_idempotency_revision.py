"""The idempotency-keys revision is reversible and leaves no drift behind."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.database import downgrade, upgrade

REVISION = "925e7d9b85f7"


async def _has_table(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(text("SELECT to_regclass('idempotency_keys') IS NOT NULL")))


async def test_downgrade_drops_the_table_and_upgrade_restores_it(
    migrated_url: str, engine: AsyncEngine
) -> None:
    await engine.dispose()  # no pooled connection may hold a lock on the table
    await downgrade(migrated_url, f"{REVISION}-1")
    assert not await _has_table(engine)
    await upgrade(migrated_url)
    assert await _has_table(engine)
    async with engine.connect() as conn:
        constraints = set(
            (
                await conn.execute(
                    text(
                        "SELECT conname FROM pg_constraint "
                        "WHERE conrelid = 'idempotency_keys'::regclass AND contype <> 'n'"
                    )
                )
            ).scalars()
        )
    assert constraints == {
        "pk_idempotency_keys",
        "fk_idempotency_keys_user_id_users",
        "ck_idempotency_keys_key_length",
        "ck_idempotency_keys_response_complete",
    }
