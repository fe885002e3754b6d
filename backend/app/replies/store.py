"""The reply runtime's way to the database: each call is one statement, in a unit of work of its
own, so a pooled connection is held for that statement only (never while a model talks or a
follower waits)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from app.domain.dtos import MessageDTO, MessageStatus
from app.domain.reply_runtime import ReplyOutcome, UsageRecord
from app.persistence.repositories.replies import (
    Chunk,
    ChunkInFlight,
    ReplyState,
    SqlReplyRepository,
)
from app.persistence.unit_of_work import SqlUnitOfWork

T = TypeVar("T")

UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[SqlUnitOfWork]]


class ReplyStore:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def _run(self, call: Callable[[SqlReplyRepository], Awaitable[T]]) -> T:
        async with self._uow_factory() as uow:
            return await call(uow.replies)

    async def append(self, chunks: Sequence[Chunk], live_ids: Sequence[int]) -> list[ReplyState]:
        async def append(replies: SqlReplyRepository) -> list[ReplyState]:
            return await replies.append(chunks, live_ids)

        try:
            return await self._run(append)
        except ChunkInFlight:  # that chunk's own statement has ended by now: once more
            return await self._run(append)

    async def persisted_ends(self, message_ids: Sequence[int]) -> dict[int, int]:
        return await self._run(lambda replies: replies.persisted_ends(message_ids))

    async def finish(
        self, outcomes: Sequence[tuple[int, ReplyOutcome | None]]
    ) -> dict[int, MessageDTO]:
        return await self._run(lambda replies: replies.finish(outcomes))

    async def tail(self, message_id: int, offset: int) -> tuple[MessageStatus, str] | None:
        return await self._run(lambda replies: replies.tail(message_id, offset))

    async def get(self, message_id: int) -> MessageDTO | None:
        return await self._run(lambda replies: replies.get(message_id))

    async def request_cancel(self, message_id: int) -> bool:
        return await self._run(lambda replies: replies.request_cancel(message_id))

    async def record_usage(self, usage: UsageRecord) -> None:
        await self._run(lambda replies: replies.record_usage(usage))

    async def fail_orphans(self, error: str) -> list[int]:
        return await self._run(lambda replies: replies.fail_orphans(error))
