"""Branches: the thread a client shows (the active branch, with where it forks) and forks of it
into new sessions."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.dtos import SessionDTO, ThreadMessageDTO
from app.domain.errors import Conflict, InvalidInput
from app.domain.ports import UnitOfWork
from app.domain.rules import Limits, normalize_title
from app.domain.services.sessions import refuse_new_session, session_not_found


@dataclass(frozen=True, slots=True)
class Thread:
    """A page of the active branch, root side first; `before` continues it towards the root
    (the first message's id), None when the page starts at the root."""

    messages: list[ThreadMessageDTO]
    before: int | None


class BranchService:
    def __init__(self, uow: UnitOfWork, limits: Limits | None = None) -> None:
        self._uow = uow
        self._limits = limits or Limits()

    async def thread(
        self, user_id: int, session_id: int, *, before: int | None = None, limit: int = 100
    ) -> Thread:
        """Up to `limit` messages of the active branch ending at the current message (or
        just above `before`), each with the ids of its siblings."""
        page = await self._uow.messages.thread(session_id, user_id, before=before, limit=limit)
        if page is None:
            raise session_not_found(session_id)
        if not page.before_found:
            raise InvalidInput(
                f"before: message {before} is not a message of session {session_id}",
                loc=("query", "before"),
            )
        messages = list(page.messages)
        first = messages[0] if messages else None
        return Thread(messages, first.id if first and first.parent_id is not None else None)

    async def fork(
        self,
        user_id: int,
        session_id: int,
        *,
        message_id: int | None = None,
        title: str | None = None,
    ) -> SessionDTO:
        """A new session of the caller holding a copy of the path from the root to
        `message_id` (default: the current message), which is current there too, with the
        session's metadata (labels); not its flags, expiry or feedback. Counts against the
        caller's session quota. Several statements, one transaction."""
        title = normalize_title(title) if title is not None else None
        maximum = self._limits.max_sessions_per_user
        async with self._uow.atomic():
            source = await self._uow.sessions.fork_source(session_id, user_id, message_id)
            if source is None:
                raise session_not_found(session_id)
            if not source.found:
                raise InvalidInput(
                    f"message_id: message {message_id} is not a message of session {session_id}",
                    loc=("body", "message_id"),
                )
            created = await self._uow.sessions.add(
                user_id, title or source.title, maximum, metadata=source.metadata
            )
            if created is None:
                raise await refuse_new_session(self._uow, user_id, maximum)
            if source.end_id is None:
                return created  # an empty session forks into an empty one
            copied = await self._uow.messages.copy_path(session_id, source.end_id, created.id)
            if copied == "streaming":
                raise Conflict(
                    f"a reply on the path to message {source.end_id} is still streaming; fork "
                    "once it has ended, or fork at an earlier message"
                )
            return copied
