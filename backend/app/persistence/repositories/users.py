from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

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
