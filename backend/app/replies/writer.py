"""The progress writer: persists what the replies of this process produce.

- Every `flush_s`, ONE statement appends each running reply's new text as a chunk row (never
  rewriting stored text, so the write-ahead log grows with the text) and reads back every
  running reply's state: a cancel flag is seen within one interval even if its NOTIFY was lost.
- Final states are group-committed: every reply ending meanwhile is saved by one statement.
- One reply's bad data never holds up the others: when a batch is refused for anything but an
  unreachable database, its items are retried one by one and only the offender fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from app.domain.dtos import MessageDTO
from app.domain.reply_runtime import ReplyOutcome
from app.domain.services.replies import UNSTORABLE_ERROR
from app.persistence.errors import is_unavailable
from app.persistence.repositories.replies import Chunk, ReplyState
from app.replies.live import RunningReply
from app.replies.store import ReplyStore

log = logging.getLogger(__name__)

#: After a failed round of final states (database away), wait this long before the next try.
FINAL_RETRY_S = 0.5

T = TypeVar("T")
R = TypeVar("R")

Final = tuple[int, ReplyOutcome | None, "asyncio.Future[MessageDTO | None]"]


async def one_by_one(
    items: Sequence[T],
    write: Callable[[Sequence[T]], Awaitable[R]],
    refused: Callable[[T, Exception], Awaitable[None]],
) -> list[R]:
    """Write `items` together; if the database refuses the batch (not: is unreachable), write
    them one at a time and hand each refused item to `refused`."""
    try:
        return [await write(items)]
    except Exception as exc:
        if is_unavailable(exc):
            raise
        if len(items) == 1:
            await refused(items[0], exc)
            return []
    results: list[R] = []
    for item in items:
        try:
            results.append(await write([item]))
        except Exception as exc:
            if is_unavailable(exc):
                raise
            await refused(item, exc)
    return results


class ProgressWriter:
    def __init__(
        self, store: ReplyStore, running: dict[int, RunningReply], *, flush_s: float
    ) -> None:
        self._store = store
        self._running = running
        self._flush_s = flush_s
        self._finals: list[Final] = []
        self._finals_waiting = asyncio.Event()
        # Progress and final states never run at once: an append racing a reply's final save
        # could otherwise store a chunk after the final state folded and removed the others.
        self._writing = asyncio.Lock()

    # --- progress -----------------------------------------------------------------------------

    async def run_progress(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception as exc:  # the database may be briefly away: retry next round
                log.warning("persisting reply progress failed: %r", exc)

    async def flush(self) -> None:
        """Append every running reply's new text; apply what the database says of each."""
        async with self._writing:
            await self._flush()

    async def _flush(self) -> None:
        # A reply that is ending is saved by the final writer, not appended to any more.
        replies = [reply for reply in list(self._running.values()) if not reply.ending]
        if not replies:
            return
        chunks = [
            Chunk(reply.message_id, reply.persisted, reply.text[reply.persisted : reply.length])
            for reply in replies
            if reply.length > reply.persisted
        ]
        live_ids = [reply.message_id for reply in replies]
        asked: set[int] = set()
        states: dict[int, ReplyState] = {}

        async def append(batch: Sequence[Chunk]) -> None:
            ids = live_ids if len(batch) == len(chunks) else [c.message_id for c in batch]
            found = await self._store.append(batch, ids)
            asked.update(ids)
            states.update((state.message_id, state) for state in found)

        async def unstorable(chunk: Chunk, exc: Exception) -> None:
            log.error("reply %s: its text cannot be stored: %r", chunk.message_id, exc)
            if (reply := self._running.get(chunk.message_id)) is not None:
                reply.stop("unstorable")

        if chunks:
            await one_by_one(chunks, append, unstorable)
        else:
            await append([])
        ends = {chunk.message_id: chunk.start + len(chunk.text) for chunk in chunks}
        conflicted = []
        for message_id in asked:
            reply = self._running.get(message_id)
            state = states.get(message_id)
            if reply is None:
                continue
            if state is None or state.status != "streaming":
                reply.stop("gone")  # deleted, or failed by a sweep that thought us dead
                continue
            if state.appended:
                reply.persisted = ends[message_id]
            elif message_id in ends:
                conflicted.append(message_id)
            if state.cancel_requested:
                reply.stop("cancelled")
        if conflicted:  # the stored text is ahead of what we know (a commit's answer was lost)
            for message_id, persisted in (await self._store.persisted_ends(conflicted)).items():
                if (reply := self._running.get(message_id)) is not None:
                    reply.persisted = min(persisted, reply.length)

    # --- final states -------------------------------------------------------------------------

    async def save_final(self, message_id: int, outcome: ReplyOutcome) -> MessageDTO | None:
        """Queue the final state for the next batch and wait until it is committed."""
        unstorable = outcome.status == "failed" and outcome.error == UNSTORABLE_ERROR
        stored: ReplyOutcome | None = None if unstorable else outcome
        future: asyncio.Future[MessageDTO | None] = asyncio.get_running_loop().create_future()
        self._finals.append((message_id, stored, future))
        self._finals_waiting.set()
        return await future

    async def run_finals(self) -> None:
        """Group commit: when idle, a reply's end costs one statement; under load, the
        statements are shared."""
        while True:
            await self._finals_waiting.wait()
            self._finals_waiting.clear()
            batch, self._finals = self._finals, []
            if not batch:
                continue
            try:
                async with self._writing:
                    rounds = await one_by_one(batch, self._store_finals, self._keep_persisted)
            except Exception as exc:  # the database is away: keep them all, retry
                log.warning("saving %d final reply states failed: %r", len(batch), exc)
                self._finals = batch + self._finals
                self._finals_waiting.set()
                await asyncio.sleep(FINAL_RETRY_S)
                continue
            saved = {k: v for found in rounds for k, v in found.items()}
            for message_id, _, future in batch:
                if not future.done():
                    future.set_result(saved.get(message_id))

    async def _store_finals(self, batch: Sequence[Final]) -> dict[int, MessageDTO]:
        return await self._store.finish([(message_id, outcome) for message_id, outcome, _ in batch])

    async def _keep_persisted(self, item: Final, exc: Exception) -> None:
        """This reply's final text was refused: fail it with the text already stored."""
        message_id, _, future = item
        log.error("reply %s: its final state cannot be stored: %r", message_id, exc)
        saved = await self._store.finish([(message_id, None)])
        if not future.done():
            future.set_result(saved.get(message_id))
