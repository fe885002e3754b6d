"""Feedback rules on the in-memory fakes: replies only, replaced, removed idempotently."""

from __future__ import annotations

import pytest

from app.domain.dtos import FeedbackInDTO
from app.domain.errors import InvalidInput, NotFound
from app.domain.services.feedback import FeedbackService
from app.domain.services.messages import MessageService
from app.domain.services.sessions import SessionService
from tests.unit.fakes import FakeUnitOfWork


async def _exchange(uow: FakeUnitOfWork) -> tuple[int, int]:
    session = await SessionService(uow).create(1, "t")
    asked = await MessageService(uow).add(1, session.id, "user", "hi")
    answered = await MessageService(uow).add(1, session.id, "assistant", "hello")
    return asked.id, answered.id


async def test_feedback_is_replaced_and_shown_on_the_message() -> None:
    uow = FakeUnitOfWork()
    _, reply = await _exchange(uow)
    service = FeedbackService(uow)
    first = await service.give(1, reply, FeedbackInDTO(rating="up"))
    second = await service.give(1, reply, FeedbackInDTO(rating="down", comment="wrong city"))
    assert (second.rating, second.comment) == ("down", "wrong city")
    assert second.created_at > first.created_at
    shown = await MessageService(uow).get(1, reply)
    assert shown.feedback == second
    await service.remove(1, reply)
    await service.remove(1, reply)  # idempotent
    assert (await MessageService(uow).get(1, reply)).feedback is None


async def test_only_the_owners_replies_take_feedback() -> None:
    uow = FakeUnitOfWork()
    asked, reply = await _exchange(uow)
    service = FeedbackService(uow)
    with pytest.raises(InvalidInput, match="only assistant messages") as refused:
        await service.give(1, asked, FeedbackInDTO(rating="up"))
    assert refused.value.loc == ("path", "message_id")
    with pytest.raises(InvalidInput, match="only assistant messages"):
        await service.remove(1, asked)
    with pytest.raises(NotFound, match=f"message {reply} not found"):
        await service.give(2, reply, FeedbackInDTO(rating="up"))
    with pytest.raises(NotFound):
        await service.remove(2, reply)
    assert (await MessageService(uow).get(1, reply)).feedback is None
