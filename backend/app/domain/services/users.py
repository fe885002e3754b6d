"""Users exist because a verified token names them: provisioned on first sight, never signed up."""

from __future__ import annotations

from app.domain.dtos import Principal
from app.domain.errors import Conflict
from app.domain.ports import UnitOfWork


class UserService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def resolve(self, principal: Principal) -> int:
        """The caller's user id, creating the row the first time this subject is seen.

        The common case is one indexed SELECT. Two first requests racing for the same subject are
        settled by the unique constraint: the loser reads the winner's row. An e-mail already held
        by another account (one person, two identity providers) is not stored a second time.
        """
        users = self._uow.users
        user_id = await users.id_for_subject(principal.subject)
        if user_id is not None:
            return user_id
        user_id = await users.add(principal.subject, principal.email)
        if user_id is None:
            user_id = await users.id_for_subject(principal.subject)
        if user_id is None and principal.email is not None:
            user_id = await users.add(principal.subject, None)
        if user_id is None:
            raise Conflict("the account is being provisioned concurrently; retry the request")
        await self._uow.commit()
        return user_id
