"""Messages: appended to a session the caller owns, read back in a stable chronological order."""

from __future__ import annotations

from app.domain.dtos import MessageDTO, Role
from app.domain.errors import Conflict, NotFound
from app.domain.pagination import Cursor, Page, PageRequest
from app.domain.ports import UnitOfWork
from app.domain.rules import Limits, validate_content, validate_tokens
from app.domain.services.sessions import session_not_found


def check_message_quota(session_id: int, count_after: int, limits: Limits) -> None:
    """Refuse to grow a session past its quota (`count_after` includes the new messages)."""
    if count_after > limits.max_messages_per_session:
        raise Conflict(
            f"session {session_id} already has {limits.max_messages_per_session} "
            "messages, the maximum; start a new session"
        )


class MessageService:
    def __init__(self, uow: UnitOfWork, limits: Limits | None = None) -> None:
        self._uow = uow
        self._limits = limits or Limits()

    async def add(
        self, user_id: int, session_id: int, role: Role, content: str, tokens: int = 0
    ) -> MessageDTO:
        """Append a message and move its session to the top of the owner's list, atomically.

        The session row is locked first, so concurrent appends to one session serialise there:
        the counter stays exact, and each message is stamped with its session's new activity time,
        read after the lock, so timestamps follow the order the appends really happened in.
        """
        content = validate_content(content)
        tokens = validate_tokens(tokens)
        slot = await self._uow.sessions.record_message(session_id, user_id)
        if slot is None:
            raise session_not_found(session_id)
        # Exact under concurrency: the session row is locked and its counter already bumped;
        # raising before the commit rolls the bump back.
        check_message_quota(session_id, slot.message_count, self._limits)
        row = await self._uow.messages.add(session_id, role, content, tokens, slot.at)
        dto = MessageDTO.model_validate(row)
        await self._uow.commit()
        return dto

    async def get(self, user_id: int, message_id: int) -> MessageDTO:
        row = await self._uow.messages.get_owned(message_id, user_id)
        if row is None:
            raise NotFound(f"message {message_id} not found")
        return MessageDTO.model_validate(row)

    async def list(self, user_id: int, session_id: int, page: PageRequest) -> Page[MessageDTO]:
        if await self._uow.sessions.get_owned(session_id, user_id) is None:
            raise session_not_found(session_id)
        rows = await self._uow.messages.list_for_session(session_id, page)
        items = [MessageDTO.model_validate(row) for row in rows]
        last = items[-1] if len(items) == page.limit else None
        return Page(items, Cursor(last.created_at, last.id) if last else None)
