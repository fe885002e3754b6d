from __future__ import annotations

from app.domain.ports import IdempotencyRecord
from app.persistence.repositories.base import Repository, Sql, first

# One statement decides who holds the key, across every process on this database: the primary
# key serialises concurrent claims. A key is ours when it is new, expired, or abandoned by a
# request in flight for longer than the lock timeout.
_CLAIM = Sql(
    """
    INSERT INTO idempotency_keys
        (user_id, key, fingerprint, claim, locked_at, expires_at)
    VALUES (:user_id, :key, :fingerprint, CAST(:claim AS uuid), now(),
            now() + make_interval(secs => :ttl_s))
    ON CONFLICT (user_id, key) DO UPDATE SET
        fingerprint = excluded.fingerprint, claim = excluded.claim, status_code = NULL,
        response_body = NULL, created_at = now(), locked_at = now(),
        expires_at = excluded.expires_at
    WHERE idempotency_keys.expires_at <= now()
       OR (idempotency_keys.status_code IS NULL
           AND idempotency_keys.locked_at < now() - make_interval(secs => :lock_timeout_s))
    RETURNING claim::text AS claim
    """
)
_HELD = Sql(
    "SELECT fingerprint, status_code, response_body FROM idempotency_keys "
    "WHERE user_id = :user_id AND key = :key"
)
_COMPLETE = Sql(
    "UPDATE idempotency_keys SET status_code = :status_code, response_body = :body "
    "WHERE user_id = :user_id AND key = :key AND claim = CAST(:claim AS uuid) RETURNING key"
)
_RELEASE = Sql(
    "DELETE FROM idempotency_keys WHERE user_id = :user_id AND key = :key "
    "AND claim = CAST(:claim AS uuid) AND status_code IS NULL"
)
_PURGE = Sql(
    """
    DELETE FROM idempotency_keys WHERE (user_id, key) IN (
        SELECT user_id, key FROM idempotency_keys WHERE expires_at <= now()
        ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED
    ) RETURNING key
    """
)


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
        params = {
            "user_id": user_id,
            "key": key,
            "fingerprint": fingerprint,
            "claim": claim,
            "ttl_s": float(ttl_s),
            "lock_timeout_s": float(lock_timeout_s),
        }
        won = first(await self._db.write(_CLAIM, params))
        if won is not None and won["claim"] == claim:
            return None
        held = first(await self._db.read(_HELD, {"user_id": user_id, "key": key}))
        if held is None:  # released between our insert and this read: still someone else's turn
            return IdempotencyRecord(fingerprint=fingerprint, status_code=None, body=None)
        return IdempotencyRecord(
            fingerprint=held["fingerprint"],
            status_code=held["status_code"],
            body=held["response_body"],
        )

    async def complete(
        self, user_id: int, key: str, claim: str, status_code: int, body: str
    ) -> bool:
        params = {
            "user_id": user_id,
            "key": key,
            "claim": claim,
            "status_code": status_code,
            "body": body,
        }
        return bool(await self._db.write(_COMPLETE, params))

    async def release(self, user_id: int, key: str, claim: str) -> None:
        await self._db.write(_RELEASE, {"user_id": user_id, "key": key, "claim": claim})

    async def purge_expired(self, limit: int) -> int:
        return len(await self._db.write(_PURGE, {"limit": limit}))
