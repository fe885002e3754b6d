"""Followers: whoever streams a reply to a client, in any server process.

In the generating process they read the in-memory text, token by token. Elsewhere they read the
stored chunks from the offset they have reached, woken by the progress NOTIFY (or a slow poll,
in case one is missed). Text only ever grows, so offsets mean the same thing everywhere.

A process that is leaving releases its followers (`release`): their streams end without a
final event, which tells clients to reconnect with `Last-Event-ID` — through the load balancer,
to another process, which follows the reply from the database while it keeps generating here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from app.domain.dtos import MessageDTO
from app.domain.reply_runtime import Progress
from app.replies.live import RunningReply
from app.replies.store import ReplyStore

#: A follower in another process re-reads at least this often, even without a NOTIFY.
POLL_S = 1.0
#: A quiet stream yields an empty `Progress` this often: the API sends an SSE comment, so
#: proxies and clients can tell a slow model from a dead connection.
KEEPALIVE_S = 15.0


class Followers:
    def __init__(
        self,
        store: ReplyStore,
        running: dict[int, RunningReply],
        *,
        coalesce_s: float,
        events_per_s: float = 0,
    ) -> None:
        self._store = store
        self._running = running
        self._coalesce_s = coalesce_s
        self._events_per_s = events_per_s
        self._waiters: dict[int, set[asyncio.Future[None]]] = {}
        #: Set when the process is leaving: unfinished streams end without a final event.
        self.released = False

    def release(self) -> None:
        """End every stream of an unfinished reply now, without a final event (the clients
        reconnect elsewhere); finished replies still get theirs."""
        self.released = True
        for reply in list(self._running.values()):
            reply.nudge()
        self.wake_all()

    async def follow(self, message_id: int, offset: int) -> AsyncIterator[Progress]:
        reply = self._running.get(message_id)
        if reply is not None:
            async for progress in self._follow_local(reply, offset):
                offset += len(progress.text)
                yield progress
            if reply.final is not None:
                yield Progress(final=reply.final)
                return
            if self.released:
                return
            # The final state could not be saved by this process: watch the row instead.
        async for progress in self._follow_stored(message_id, offset):
            yield progress

    async def _follow_local(self, reply: RunningReply, offset: int) -> AsyncIterator[Progress]:
        """Text as the model produces it, until the reply is done. After a delta, tokens that
        arrive within `spacing()` travel together: the first token is never delayed, nor is
        the end, and a fast model costs one event per interval rather than one per token."""
        while not self.released or reply.done.is_set():
            changed = reply.changed()
            done = reply.done.is_set()
            if reply.length > offset:
                tail = reply.text[offset:]
                offset += len(tail)
                yield Progress(text=tail)
                if not done and (pause := self.spacing()):
                    await reply.pause(pause)
                    continue
            if done:
                return
            try:
                await asyncio.wait_for(changed, KEEPALIVE_S)
            except TimeoutError:
                yield Progress()

    def spacing(self) -> float:
        """Time between two deltas of one stream: `coalesce_s`, stretched under load so that
        this process sends at most `events_per_s` deltas a second across its running replies.
        Each event costs the same whatever it carries; a thousand streams at ten a second
        would cost more than starting new replies. First tokens and final events still go at
        once."""
        if not self._events_per_s:
            return self._coalesce_s
        return max(self._coalesce_s, len(self._running) / self._events_per_s)

    async def _follow_stored(self, message_id: int, offset: int) -> AsyncIterator[Progress]:
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            waiter = self._waiter(message_id)
            try:
                found = await self._store.tail(message_id, offset)
                if found is None:
                    yield Progress(gone=True)
                    return
                status, tail = found
                if tail:
                    offset += len(tail)
                    quiet_since = loop.time()
                    yield Progress(text=tail)
                elif loop.time() - quiet_since >= KEEPALIVE_S:
                    quiet_since = loop.time()
                    yield Progress()
                if status != "streaming":
                    final = await self._store.get(message_id)
                    yield Progress(final=final) if final is not None else Progress(gone=True)
                    return
                if self.released:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, POLL_S)
            finally:
                self._drop(message_id, waiter)

    async def wait_finished(self, message_id: int, timeout_s: float) -> MessageDTO | None:
        reply = self._running.get(message_id)
        if reply is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reply.done.wait(), timeout_s)
            return reply.final
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            waiter = self._waiter(message_id)
            try:
                final = await self._store.get(message_id)
                if final is None or final.status != "streaming":
                    return final
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, min(remaining, POLL_S))
            finally:
                self._drop(message_id, waiter)

    def on_progress(self, payload: str) -> None:
        """The progress NOTIFY: wake whoever follows these replies here."""
        for item in payload.split(","):
            if item.isdigit():
                self._wake(int(item))

    def wake_all(self) -> None:
        """After missed notifications: every follower re-reads."""
        for message_id in list(self._waiters):
            self._wake(message_id)

    def _wake(self, message_id: int) -> None:
        for future in self._waiters.get(message_id, ()):
            if not future.done():
                future.set_result(None)

    def _waiter(self, message_id: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(message_id, set()).add(future)
        return future

    def _drop(self, message_id: int, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(message_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[message_id]
