"""Chat sessions: titles, the active branch, ownership and the caller's list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from app.domain.dtos import SessionDTO
from app.domain.errors import AccountGone, Conflict, InvalidInput, NotFound
from app.domain.pagination import Cursor, Page, PageRequest
from app.domain.ports import Expiry, SessionChanges, UnitOfWork
from app.domain.rules import (
    Limits,
    metadata_filter,
    normalize_title,
    validate_expiry,
    validate_metadata,
)


def session_not_found(session_id: int) -> NotFound:
    # Same words whether the row is missing or someone else's: no existence leak.
    return NotFound(f"session {session_id} not found")


async def refuse_new_session(uow: UnitOfWork, user_id: int, maximum: int) -> Exception:
    """Why a session could not be added: the account is gone, or it has `maximum` already."""
    if await uow.sessions.session_count(user_id) is None:
        return AccountGone(user_id)
    return Conflict(
        f"the account already has {maximum} sessions, the maximum; delete some before creating more"
    )


class SessionService:
    def __init__(self, uow: UnitOfWork, limits: Limits | None = None) -> None:
        self._uow = uow
        self._limits = limits or Limits()

    async def create(
        self,
        user_id: int,
        title: str,
        metadata: Mapping[str, str] | None = None,
        expires_at: datetime | None = None,
    ) -> SessionDTO:
        """One statement: the owner's session counter grows (exactly, under the user row's
        lock, so concurrent creates cannot overshoot the quota) and the session is inserted.
        With `expires_at` it is a temporary chat."""
        maximum = self._limits.max_sessions_per_user
        if expires_at is not None:
            expires_at = validate_expiry(expires_at)
        session = await self._uow.sessions.add(
            user_id, normalize_title(title), maximum, validate_metadata(metadata or {}), expires_at
        )
        if session is not None:
            return session
        raise await refuse_new_session(self._uow, user_id, maximum)

    async def get(self, user_id: int, session_id: int) -> SessionDTO:
        session = await self._uow.sessions.get(session_id, user_id)
        if session is None:
            raise session_not_found(session_id)
        return session

    async def list(
        self,
        user_id: int,
        page: PageRequest,
        *,
        archived: bool = False,
        metadata: Sequence[str] = (),
    ) -> Page[SessionDTO]:
        """Pinned first, then by recency; `metadata` holds `key:value` filters that must all
        match. Archived sessions are listed only with `archived`, and then only they are."""
        wanted = metadata_filter(metadata)
        if wanted is None:  # one key, two values: nothing matches, nothing to ask
            return Page([], None)
        items = list(
            await self._uow.sessions.list(user_id, page, archived=archived, metadata=wanted)
        )
        last = items[-1] if len(items) == page.limit else None
        return Page(items, Cursor(last.updated_at, last.id, last.pinned) if last else None)

    async def rename(self, user_id: int, session_id: int, title: str) -> SessionDTO:
        return await self.update(user_id, session_id, title=title)

    async def update(
        self,
        user_id: int,
        session_id: int,
        *,
        title: str | None = None,
        current_message_id: int | None = None,
        metadata: Mapping[str, str] | None = None,
        archived: bool | None = None,
        pinned: bool | None = None,
        expiry: Expiry = "keep",
    ) -> SessionDTO:
        """Rename, switch branch (any message of the session becomes the current one), replace
        the metadata, archive or pin, make it temporary or not, any of them or several, in one
        statement. A rename, a branch switch or a new expiry counts as activity (the session
        moves up the list); the rest does not."""
        changes = SessionChanges(
            title=normalize_title(title) if title is not None else None,
            current_message_id=current_message_id,
            metadata=validate_metadata(metadata) if metadata is not None else None,
            archived=archived,
            pinned=pinned,
            expiry=validate_expiry(expiry) if isinstance(expiry, datetime) else expiry,
        )
        if changes == SessionChanges():
            raise InvalidInput(
                "give at least one of title, current_message_id, metadata, archived, pinned, "
                "expires_at"
            )
        session = await self._uow.sessions.update(session_id, user_id, changes)
        if session is not None:
            return session
        if await self._uow.sessions.get(session_id, user_id) is None:
            raise session_not_found(session_id)
        raise InvalidInput(
            f"current_message_id: message {changes.current_message_id} is not a message of session "
            f"{session_id}",
            loc=("body", "current_message_id"),
        )

    async def delete(self, user_id: int, session_id: int) -> None:
        if not await self._uow.sessions.delete(session_id, user_id):
            raise session_not_found(session_id)
