"""Chat sessions: titles, ownership and the caller's list."""

from __future__ import annotations

from app.domain.dtos import SessionDTO
from app.domain.errors import AccountGone, Conflict, NotFound
from app.domain.pagination import Cursor, Page, PageRequest
from app.domain.ports import UnitOfWork
from app.domain.rules import Limits, normalize_title


def session_not_found(session_id: int) -> NotFound:
    # Same words whether the row is missing or someone else's: no existence leak.
    return NotFound(f"session {session_id} not found")


class SessionService:
    def __init__(self, uow: UnitOfWork, limits: Limits | None = None) -> None:
        self._uow = uow
        self._limits = limits or Limits()

    async def create(self, user_id: int, title: str) -> SessionDTO:
        """One statement: the owner's session counter grows (exactly, under the user row's
        lock, so concurrent creates cannot overshoot the quota) and the session is inserted."""
        maximum = self._limits.max_sessions_per_user
        session = await self._uow.sessions.add(user_id, normalize_title(title), maximum)
        if session is not None:
            return session
        if await self._uow.sessions.session_count(user_id) is None:
            raise AccountGone(user_id)
        raise Conflict(
            f"the account already has {maximum} sessions, the maximum; delete some before "
            "creating more"
        )

    async def get(self, user_id: int, session_id: int) -> SessionDTO:
        session = await self._uow.sessions.get(session_id, user_id)
        if session is None:
            raise session_not_found(session_id)
        return session

    async def list(self, user_id: int, page: PageRequest) -> Page[SessionDTO]:
        items = list(await self._uow.sessions.list(user_id, page))
        last = items[-1] if len(items) == page.limit else None
        return Page(items, Cursor(last.updated_at, last.id) if last else None)

    async def rename(self, user_id: int, session_id: int, title: str) -> SessionDTO:
        session = await self._uow.sessions.rename(session_id, user_id, normalize_title(title))
        if session is None:
            raise session_not_found(session_id)
        return session

    async def delete(self, user_id: int, session_id: int) -> None:
        if not await self._uow.sessions.delete(session_id, user_id):
            raise session_not_found(session_id)
