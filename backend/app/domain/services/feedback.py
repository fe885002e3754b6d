"""Feedback: a user's thumbs up or down (and a comment) on an assistant message."""

from __future__ import annotations

from app.domain.dtos import FeedbackDTO, FeedbackInDTO
from app.domain.errors import InvalidInput, NotFound
from app.domain.ports import UnitOfWork
from app.domain.rules import FEEDBACK_COMMENT_MAX_CHARS


def message_not_found(message_id: int) -> NotFound:
    return NotFound(f"message {message_id} not found")


def _not_a_reply(message_id: int, role: str) -> InvalidInput:
    return InvalidInput(
        f"message_id: message {message_id} is a {role} message; only assistant messages take "
        "feedback",
        loc=("path", "message_id"),
    )


class FeedbackService:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def give(self, user_id: int, message_id: int, feedback: FeedbackInDTO) -> FeedbackDTO:
        """Rate an assistant message, replacing any earlier feedback: one statement."""
        if feedback.comment is not None and (
            len(feedback.comment) > FEEDBACK_COMMENT_MAX_CHARS or "\x00" in feedback.comment
        ):
            raise InvalidInput(
                f"comment: at most {FEEDBACK_COMMENT_MAX_CHARS} characters, without NUL",
                loc=("body", "comment"),
            )
        stored = await self._uow.messages.set_feedback(message_id, user_id, feedback)
        if stored is None:
            raise message_not_found(message_id)
        if not isinstance(stored, FeedbackDTO):
            raise _not_a_reply(message_id, stored)
        return stored

    async def remove(self, user_id: int, message_id: int) -> None:
        """Remove the feedback of an assistant message; removing none is not an error (the
        outcome is the same: the message has no feedback)."""
        stored = await self._uow.messages.set_feedback(message_id, user_id, None)
        if stored is None:
            raise message_not_found(message_id)
        if stored != "assistant":
            raise _not_a_reply(message_id, str(stored))
