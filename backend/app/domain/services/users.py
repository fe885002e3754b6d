"""Users exist because a verified token names them: provisioned on first sight, never signed up."""

from __future__ import annotations

from collections import OrderedDict

from app.domain.dtos import Principal, UserDTO
from app.domain.errors import AccountGone, Conflict
from app.domain.ports import UnitOfWork


class KnownUsers:
    """A bounded, per-process map from a token's (subject, e-mail) to the user id, so a warm
    request resolves its caller without a round trip.

    Ids are never reused, so a stale entry can only point at an account that no longer exists,
    never at another user's. Entries go when the account is erased (here, or in another process
    through a database notification), and all of them when those notifications may have been
    missed (the listener reconnected). The e-mail is part of the key: a token with a new e-mail
    takes the slow path once, which stores it.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[tuple[str, str | None], int] = OrderedDict()

    def get(self, principal: Principal) -> int | None:
        key = (principal.subject, principal.email)
        user_id = self._ids.get(key)
        if user_id is not None:
            self._ids.move_to_end(key)
        return user_id

    def put(self, principal: Principal, user_id: int) -> None:
        self._ids[(principal.subject, principal.email)] = user_id
        self._ids.move_to_end((principal.subject, principal.email))
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)

    def forget(self, user_id: int) -> None:
        for key in [key for key, known in self._ids.items() if known == user_id]:
            del self._ids[key]

    def clear(self) -> None:
        self._ids.clear()


class UserService:
    def __init__(self, uow: UnitOfWork, known: KnownUsers | None = None) -> None:
        self._uow = uow
        self._known = known if known is not None else KnownUsers()

    async def resolve(self, principal: Principal) -> int:
        """The caller's user id: from the cache when warm, else looked up (and provisioned the
        first time this subject is seen).

        Two first requests racing for one subject are settled by the unique constraint: the
        loser reads the winner's row. The e-mail follows the token (synced when it changes); one
        already held by another account (one person, two identity providers) is not stored a
        second time.
        """
        user_id = self._known.get(principal)
        if user_id is None:
            user_id = await self._look_up(principal)
            self._known.put(principal, user_id)
        return user_id

    async def _look_up(self, principal: Principal) -> int:
        users = self._uow.users
        async with self._uow.atomic():
            known = await users.find(principal.subject)
            if known is not None:
                email = principal.email
                if email is not None and email != known.email:
                    await users.set_email(known.id, email)
                return known.id
            user_id = await users.add(principal.subject, principal.email)
            if user_id is None:
                known = await users.find(principal.subject)
                user_id = known.id if known is not None else None
            if user_id is None and principal.email is not None:
                user_id = await users.add(principal.subject, None)
            if user_id is None:
                raise Conflict("the account is being provisioned concurrently; retry the request")
            return user_id

    async def me(self, user_id: int) -> UserDTO:
        user = await self._uow.users.get(user_id)
        if user is None:
            raise AccountGone(user_id)
        return user

    async def erase(self, user_id: int) -> None:
        """Delete the account and, by database cascade, its sessions, messages and keys; then
        its usage. In that order, as two statements of one transaction: a reply ending during
        the erasure holds its message until it has recorded its usage, so by the time the
        account's statement is through (it waited for that message), the second statement sees
        every usage row there will ever be."""
        async with self._uow.atomic():
            deleted = await self._uow.users.delete(user_id)
            await self._uow.usage.erase(user_id)
        self._known.forget(user_id)
        if not deleted:
            raise AccountGone(user_id)
