"""Users exist because a verified token names them: provisioned on first sight, never signed up."""

from __future__ import annotations

from app.domain.dtos import Principal, UserDTO
from app.domain.errors import Conflict, NotFound
from app.domain.ports import UnitOfWork


class UserService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def resolve(self, principal: Principal) -> int:
        """The caller's user id, creating the row the first time this subject is seen.

        The common case is one indexed SELECT. Two first requests racing for the same subject are
        settled by the unique constraint: the loser reads the winner's row. The e-mail follows the
        token (synced when it changes); one already held by another account (one person, two
        identity providers) is not stored a second time.
        """
        users = self._uow.users
        known = await users.find_by_subject(principal.subject)
        if known is not None:
            email = principal.email
            if (
                email is not None
                and email != known.email
                and await users.set_email(known.id, email)
            ):
                await self._uow.commit()
            return known.id
        user_id = await users.add(principal.subject, principal.email)
        if user_id is None:
            user_id = await users.id_for_subject(principal.subject)
        if user_id is None and principal.email is not None:
            user_id = await users.add(principal.subject, None)
        if user_id is None:
            raise Conflict("the account is being provisioned concurrently; retry the request")
        await self._uow.commit()
        return user_id

    async def me(self, user_id: int) -> UserDTO:
        row = await self._uow.users.get(user_id)
        if row is None:
            raise NotFound("the account no longer exists")
        return UserDTO(
            id=row.id,
            subject=row.auth0_id,
            email=row.email,
            created_at=row.created_at,
            session_count=await self._uow.sessions.count_owned(user_id),
        )

    async def erase(self, user_id: int) -> None:
        """Delete the account and, by database cascade, its sessions, messages and keys."""
        if not await self._uow.users.delete(user_id):
            raise NotFound("the account no longer exists")
        await self._uow.commit()
