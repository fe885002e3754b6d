"""Deltas of one stream are spaced by REPLY_COALESCE_MS, further apart when a process runs
more replies than REPLY_EVENTS_PER_S allows at that pace; the first token and the end are
never held back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.dtos import MessageDTO
from app.domain.reply_runtime import ReplyOutcome
from app.persistence.unit_of_work import unit_of_work_factory
from app.replies.followers import Followers
from app.replies.live import RunningReply
from app.replies.store import ReplyStore


async def _never_saved(_message_id: int, _outcome: ReplyOutcome) -> MessageDTO | None:
    raise AssertionError("nothing is saved here")


def _running(count: int) -> dict[int, RunningReply]:
    return {i: RunningReply(i, _never_saved) for i in range(1, count + 1)}


def test_spacing_stretches_with_the_running_replies(engine: AsyncEngine) -> None:
    store = ReplyStore(unit_of_work_factory(engine))
    assert Followers(store, _running(5), coalesce_s=0.1, events_per_s=10).spacing() == 0.5
    # Few replies: the coalescing interval itself.
    assert Followers(store, _running(1), coalesce_s=0.1, events_per_s=100).spacing() == 0.1
    # No cap.
    assert Followers(store, _running(500), coalesce_s=0.1, events_per_s=0).spacing() == 0.1


async def test_spaced_deltas_carry_everything_and_the_end_is_not_held(engine: AsyncEngine) -> None:
    running = _running(1)
    reply = running[1]
    # One reply at 0.2 events a second: five seconds between deltas.
    followers = Followers(
        ReplyStore(unit_of_work_factory(engine)), running, coalesce_s=0.05, events_per_s=0.2
    )
    tokens = [f"t{i} " for i in range(30)]
    final = MessageDTO(
        id=1,
        session_id=1,
        role="assistant",
        content="".join(tokens),
        tokens=len(tokens),
        created_at=datetime.now(UTC),
    )

    async def model() -> None:
        for token in tokens:
            reply.append(token)
            await asyncio.sleep(0.01)
        reply.finish(final)

    loop = asyncio.get_running_loop()
    began = loop.time()
    generating = asyncio.create_task(model())
    deltas: list[str] = []
    ended_after = None
    async for progress in followers.follow(1, 0):
        if progress.text:
            deltas.append(progress.text)
        if progress.final is not None:
            ended_after = loop.time() - began
    await generating
    assert "".join(deltas) == final.content
    # The first token at once, the rest together at the end: not one event per token.
    assert deltas[0] == tokens[0]
    assert len(deltas) == 2
    # The end came as soon as the model finished (0.3 s), not after the 5 s spacing.
    assert ended_after is not None
    assert ended_after < 2.0
