"""Messages: appended to a session the caller owns, read back in a stable chronological order.

An append goes under the session's current message and becomes current: the active branch
grows. A tool result must answer a call of an assistant message on that branch.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.domain.dtos import MessageDTO, Role, ToolCall, ToolCallIn
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.pagination import Cursor, Page, PageRequest
from app.domain.ports import NewMessage, UnansweredCall, UnitOfWork
from app.domain.rules import Limits, validate_message_shape, validate_tokens
from app.domain.services.sessions import session_not_found


def session_full(session_id: int, limits: Limits) -> Conflict:
    return Conflict(
        f"session {session_id} already has {limits.max_messages_per_session} messages, the "
        "maximum; start a new session"
    )


def _unanswered(call_id: str, refused: UnansweredCall) -> InvalidInput:
    if refused.answered_by is None:
        detail = (
            f"tool_call_id: {call_id!r} is not a call of an assistant message on the session's "
            "current branch"
        )
    else:
        detail = (
            f"tool_call_id: call {call_id!r} already has a result on this branch (message "
            f"{refused.answered_by})"
        )
    return InvalidInput(detail, loc=("body", "tool_call_id"))


class MessageService:
    def __init__(self, uow: UnitOfWork, limits: Limits | None = None) -> None:
        self._uow = uow
        self._limits = limits or Limits()

    async def add(
        self,
        user_id: int,
        session_id: int,
        role: Role,
        content: str | None,
        tokens: int = 0,
        *,
        tool_calls: Sequence[ToolCallIn] | None = None,
        tool_call_id: str | None = None,
    ) -> MessageDTO:
        """Append a message; its session's counter, recency and current message change in the
        same statement."""
        call_ids = [call.id for call in tool_calls] if tool_calls is not None else None
        content = validate_message_shape(role, content, call_ids, tool_call_id)
        calls = (
            tuple(ToolCall.model_validate(call.model_dump()) for call in tool_calls)
            if tool_calls is not None
            else None
        )
        message = NewMessage(role, content, validate_tokens(tokens), calls, tool_call_id)
        maximum = self._limits.max_messages_per_session
        added = await self._uow.messages.add(user_id, session_id, message, maximum)
        if added == "stale":
            # The branch grew while the statement waited for the session: again, holding it.
            async with self._uow.atomic():
                if await self._uow.sessions.lock(session_id, user_id):
                    added = await self._uow.messages.add(user_id, session_id, message, maximum)
                else:
                    added = None
        if isinstance(added, MessageDTO):
            return added
        if isinstance(added, UnansweredCall):
            assert tool_call_id is not None
            raise _unanswered(tool_call_id, added)
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
