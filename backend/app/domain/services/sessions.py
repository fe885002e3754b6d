"""Chat sessions: titles, ownership and the caller's list."""

from __future__ import annotations

from app.domain.dtos import SessionDTO
from app.domain.errors import Conflict, NotFound
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
        title = normalize_title(title)
        # A quota, not an invariant: concurrent creates may overshoot it by their number.
        if await self._uow.sessions.count_owned(user_id) >= self._limits.max_sessions_per_user:
            raise Conflict(
                f"the account already has {self._limits.max_sessions_per_user} sessions, the "
                "maximum; delete some before creating more"
            )
        row = await self._uow.sessions.add(user_id, title)
        dto = SessionDTO.model_validate(row)
        await self._uow.commit()
        return dto

    async def get(self, user_id: int, session_id: int) -> SessionDTO:
        row = await self._uow.sessions.get_owned(session_id, user_id)
        if row is None:
            raise session_not_found(session_id)
        return SessionDTO.model_validate(row)

    async def list(self, user_id: int, page: PageRequest) -> Page[SessionDTO]:
        rows = await self._uow.sessions.list_owned(user_id, page)
        items = [SessionDTO.model_validate(row) for row in rows]
        last = items[-1] if len(items) == page.limit else None
        return Page(items, Cursor(last.updated_at, last.id) if last else None)

    async def rename(self, user_id: int, session_id: int, title: str) -> SessionDTO:
        row = await self._uow.sessions.rename(session_id, user_id, normalize_title(title))
        if row is None:
            raise session_not_found(session_id)
        dto = SessionDTO.model_validate(row)
        await self._uow.commit()
        return dto

    async def delete(self, user_id: int, session_id: int) -> None:
        if not await self._uow.sessions.delete_owned(session_id, user_id):
            raise session_not_found(session_id)
        await self._uow.commit()
