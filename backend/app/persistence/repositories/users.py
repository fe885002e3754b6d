from __future__ import annotations

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app.persistence.models import User
from app.persistence.repositories.base import Repository


class SqlUserRepository(Repository):
    async def id_for_subject(self, subject: str) -> int | None:
        result = await self._session.scalar(select(User.id).where(User.auth0_id == subject))
        return result

    async def add(self, subject: str, email: str | None) -> int | None:
        # No conflict target: a clash on the subject *or* the e-mail yields None, not an error.
        stmt = (
            insert(User)
            .values(auth0_id=subject, email=email)
            .on_conflict_do_nothing()
            .returning(User.id)
        )
        return await self._session.scalar(stmt)

    async def find_by_subject(self, subject: str) -> User | None:
        return await self._session.scalar(select(User).where(User.auth0_id == subject))

    async def get(self, user_id: int) -> User | None:
        return await self._session.scalar(select(User).where(User.id == user_id))

    async def set_email(self, user_id: int, email: str) -> bool:
        other = aliased(User)
        stmt = (
            update(User)
            .where(User.id == user_id, ~exists().where(other.email == email, other.id != user_id))
            .values(email=email)
            .returning(User.id)
            .execution_options(synchronize_session=False)
        )
        # A savepoint: losing a race for the address to another account must not abort the
        # caller's transaction, only this update.
        try:
            async with self._session.begin_nested():
                return await self._session.scalar(stmt) is not None
        except IntegrityError:
            return False

    async def delete(self, user_id: int) -> bool:
        stmt = delete(User).where(User.id == user_id).returning(User.id)
        return await self._session.scalar(stmt) is not None
