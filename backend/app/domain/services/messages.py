"""Messages: appended to a session the caller owns, read back in a stable chronological order."""

from __future__ import annotations

from app.domain.dtos import MessageDTO, Role
from app.domain.errors import Conflict, NotFound
from app.domain.pagination import Cursor, Page, PageRequest
from app.domain.ports import UnitOfWork
from app.domain.rules import Limits, validate_content, validate_tokens
from app.domain.services.sessions import session_not_found


def session_full(session_id: int, limits: Limits) -> Conflict:
    return Conflict(
        f"session {session_id} already has {limits.max_messages_per_session} messages, the "
        "maximum; start a new session"
    )


class MessageService:
    def __init__(self, uow: UnitOfWork, limits: Limits | None = None) -> None:
        self._uow = uow
        self._limits = limits or Limits()

    async def add(
        self, user_id: int, session_id: int, role: Role, content: str, tokens: int = 0
    ) -> MessageDTO:
        """Append a message; its session's counter and recency change in the same statement."""
        content = validate_content(content)
        tokens = validate_tokens(tokens)
        message = await self._uow.messages.add(
            user_id, session_id, role, content, tokens, self._limits.max_messages_per_session
        )
        if message is not None:
            return message
        # The failure path may cost a second read: which of the two refusals was it?
        if await self._uow.sessions.message_count(session_id, user_id) is None:
            raise session_not_found(session_id)
        raise session_full(session_id, self._limits)

    async def get(self, user_id: int, message_id: int) -> MessageDTO:
        message = await self._uow.messages.get(message_id, user_id)
        if message is None:
            raise NotFound(f"message {message_id} not found")
        return message

    async def list(self, user_id: int, session_id: int, page: PageRequest) -> Page[MessageDTO]:
        found = await self._uow.messages.list(session_id, user_id, page)
        if found is None:
            raise session_not_found(session_id)
        items = list(found)
        last = items[-1] if len(items) == page.limit else None
        return Page(items, Cursor(last.created_at, last.id) if last else None)
