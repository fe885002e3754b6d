from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from app.domain.dtos import UserDTO
from app.domain.ports import KnownUser
from app.persistence.channels import USER_DELETED
from app.persistence.models import User
from app.persistence.repositories.base import Repository

_FIND = text("SELECT id, email FROM users WHERE auth0_id = :subject")
_GET = text(
    "SELECT id, auth0_id AS subject, email, created_at, session_count FROM users WHERE id = :id"
)
# The NOTIFY is delivered when the deletion commits: every process's cache forgets the id.
_DELETE = text(
    "WITH gone AS (DELETE FROM users WHERE id = :id RETURNING id) "
    "SELECT id, pg_notify(:channel, id::text) FROM gone"
)
_SET_EMAIL = text(
    "UPDATE users SET email = :email WHERE id = :id AND NOT EXISTS "
    "(SELECT 1 FROM users AS other WHERE other.email = :email AND other.id <> :id) RETURNING id"
)


class SqlUserRepository(Repository):
    async def find(self, subject: str) -> KnownUser | None:
        row = (await self._db.read(_FIND, {"subject": subject})).first()
        return KnownUser(row.id, row.email) if row is not None else None

    async def add(self, subject: str, email: str | None) -> int | None:
        # No conflict target: a clash on the subject *or* the e-mail yields None, not an error.
        stmt = (
            insert(User)
            .values(auth0_id=subject, email=email)
            .on_conflict_do_nothing()
            .returning(User.id)
        )
        result: int | None = (await self._db.write(stmt)).scalar()
        return result

    async def set_email(self, user_id: int, email: str) -> bool:
        # A savepoint: losing a race for the address to another account must not abort the
        # caller's transaction, only this update.
        try:
            async with self._db.savepoint():
                result = await self._db.write(_SET_EMAIL, {"id": user_id, "email": email})
                return result.first() is not None
        except IntegrityError:
            return False

    async def get(self, user_id: int) -> UserDTO | None:
        row = (await self._db.read(_GET, {"id": user_id})).first()
        return UserDTO.model_validate(row._mapping) if row is not None else None

    async def delete(self, user_id: int) -> bool:
        result = await self._db.write(_DELETE, {"id": user_id, "channel": USER_DELETED})
        return result.first() is not None
