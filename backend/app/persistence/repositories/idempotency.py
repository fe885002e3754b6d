from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from app.domain.ports import IdempotencyRecord
from app.persistence.models import IdempotencyKey
from app.persistence.repositories.base import Repository


class SqlIdempotencyRepository(Repository):
    async def claim(
        self,
        user_id: int,
        key: str,
        fingerprint: str,
        claim: str,
        *,
        ttl_s: int,
        lock_timeout_s: int,
    ) -> IdempotencyRecord | None:
        now = func.now()
        fresh = insert(IdempotencyKey).values(
            user_id=user_id,
            key=key,
            fingerprint=fingerprint,
            claim=claim,
            locked_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        # One statement decides who holds the key, across every process on this database: the
        # primary key serialises concurrent claims, and the loser sees the winner's row.
        stmt = fresh.on_conflict_do_update(
            index_elements=[IdempotencyKey.user_id, IdempotencyKey.key],
            set_={
                "fingerprint": fresh.excluded.fingerprint,
                "claim": fresh.excluded.claim,
                "status_code": None,
                "response_body": None,
                "created_at": now,
                "locked_at": now,
                "expires_at": fresh.excluded.expires_at,
            },
            where=or_(
                IdempotencyKey.expires_at <= now,
                and_(
                    IdempotencyKey.status_code.is_(None),
                    IdempotencyKey.locked_at < now - timedelta(seconds=lock_timeout_s),
                ),
            ),
        ).returning(IdempotencyKey.claim)
        if (await self._db.write(stmt)).scalar() == claim:
            return None
        held = (
            await self._db.read(
                select(
                    IdempotencyKey.fingerprint,
                    IdempotencyKey.status_code,
                    IdempotencyKey.response_body,
                ).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
            )
        ).one_or_none()
        if held is None:  # released between our insert and this read: still someone else's turn
            return IdempotencyRecord(fingerprint=fingerprint, status_code=None, body=None)
        return IdempotencyRecord(
            fingerprint=held.fingerprint, status_code=held.status_code, body=held.response_body
        )

    async def complete(
        self, user_id: int, key: str, claim: str, status_code: int, body: str
    ) -> bool:
        stmt = (
            update(IdempotencyKey)
            .where(
                IdempotencyKey.user_id == user_id,
                IdempotencyKey.key == key,
                IdempotencyKey.claim == claim,
            )
            .values(status_code=status_code, response_body=body)
            .returning(IdempotencyKey.key)
        )
        return (await self._db.write(stmt)).first() is not None

    async def release(self, user_id: int, key: str, claim: str) -> None:
        await self._db.write(
            delete(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id,
                IdempotencyKey.key == key,
                IdempotencyKey.claim == claim,
                IdempotencyKey.status_code.is_(None),
            )
        )

    async def purge_expired(self, limit: int) -> int:
        expired = (
            select(IdempotencyKey.user_id, IdempotencyKey.key)
            .where(IdempotencyKey.expires_at <= func.now())
            .order_by(IdempotencyKey.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            delete(IdempotencyKey)
            .where(tuple_(IdempotencyKey.user_id, IdempotencyKey.key).in_(expired))
            .returning(IdempotencyKey.key)
        )
        return len((await self._db.write(stmt)).all())
