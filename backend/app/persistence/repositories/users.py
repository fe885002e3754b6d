from __future__ import annotations

import asyncpg

from app.domain.dtos import UserDTO
from app.domain.ports import KnownUser
from app.persistence.channels import USER_DELETED
from app.persistence.repositories.base import Repository, Sql, first
from app.persistence.repositories.sessions import EXPIRED_COUNT

_FIND = Sql("SELECT id, email FROM users WHERE auth0_id = :subject")
# No conflict target: a clash on the subject *or* the e-mail yields no row, not an error.
_ADD = Sql(
    "INSERT INTO users (auth0_id, email) VALUES (:subject, :email) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_SET_EMAIL = Sql(
    "UPDATE users SET email = :email WHERE id = :id AND NOT EXISTS "
    "(SELECT 1 FROM users AS other WHERE other.email = :email AND other.id <> :id) RETURNING id"
)
_GET = Sql(
    "SELECT id, auth0_id AS subject, email, created_at, "
    f"session_count - {EXPIRED_COUNT} AS session_count FROM users WHERE id = :id"
)
# The NOTIFY is delivered when the deletion commits: every process's cache forgets the id.
_DELETE = Sql(
    "WITH gone AS (DELETE FROM users WHERE id = :id RETURNING id) "
    "SELECT id, pg_notify(:channel, id::text) FROM gone"
)


class SqlUserRepository(Repository):
    async def find(self, subject: str) -> KnownUser | None:
        row = first(await self._db.read(_FIND, {"subject": subject}))
        return KnownUser(row["id"], row["email"]) if row is not None else None

    async def add(self, subject: str, email: str | None) -> int | None:
        row = first(await self._db.write(_ADD, {"subject": subject, "email": email}))
        return row["id"] if row is not None else None

    async def set_email(self, user_id: int, email: str) -> bool:
        # A savepoint: losing a race for the address to another account must not abort the
        # caller's transaction, only this update.
        try:
            async with self._db.savepoint():
                return bool(await self._db.write(_SET_EMAIL, {"id": user_id, "email": email}))
        except asyncpg.UniqueViolationError:
            return False

    async def get(self, user_id: int) -> UserDTO | None:
        row = first(await self._db.read(_GET, {"id": user_id}))
        return UserDTO.model_validate(dict(row)) if row is not None else None

    async def delete(self, user_id: int) -> bool:
        return bool(await self._db.write(_DELETE, {"id": user_id, "channel": USER_DELETED}))
