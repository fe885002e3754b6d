"""The reply runtime of one server process: implements the domain's `ReplyHub`.

It runs each reply as a task of its own (apart from any request, so a client that goes away
does not end it), and composes the jobs around it: the progress writer, the followers, the
cancellation and the liveness sweep. Everything that crosses processes goes through PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from app.domain.dtos import MessageDTO
from app.domain.errors import Unavailable
from app.domain.reply_runtime import LiveReply, Progress, UsageRecord
from app.persistence.channels import REPLY_CANCEL, REPLY_PROGRESS
from app.persistence.listener import Listener
from app.replies.cancellation import Cancellation
from app.replies.followers import Followers
from app.replies.live import RunningReply
from app.replies.liveness import Liveness
from app.replies.store import ReplyStore, UnitOfWorkFactory
from app.replies.writer import ProgressWriter

#: After the grace period, how long a stopped reply gets to save its final state.
FINAL_SAVE_S = 10.0


class ReplyRuntime:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        listener: Listener,
        *,
        flush_s: float,
        sweep_s: float,
        coalesce_s: float,
        events_per_s: float = 0,
    ) -> None:
        store = self._store = ReplyStore(uow_factory)
        self._running: dict[int, RunningReply] = {}
        self._listener = listener
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self.writer = ProgressWriter(store, self._running, flush_s=flush_s)
        self.followers = Followers(
            store, self._running, coalesce_s=coalesce_s, events_per_s=events_per_s
        )
        self.cancellation = Cancellation(store, self._running)
        self.liveness = Liveness(listener, store, self._running, sweep_s=sweep_s)
        listener.subscribe(REPLY_PROGRESS, self.followers.on_progress)
        listener.subscribe(REPLY_CANCEL, self.cancellation.on_cancel)
        listener.on_reconnect(self.followers.wake_all)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.liveness.stopping = False
        await self.liveness.try_start()
        self._background = [
            asyncio.create_task(self.writer.run_progress(), name="reply-progress-writer"),
            asyncio.create_task(self.writer.run_finals(), name="reply-final-writer"),
            asyncio.create_task(self.liveness.supervise(), name="reply-liveness"),
        ]

    def release_streams(self) -> None:
        """The process is leaving: end the streams of unfinished replies without a final event,
        so their clients reconnect (with `Last-Event-ID`) to another process; the replies go on
        generating here (see `finish_replies`)."""
        self.followers.release()

    async def finish_replies(self, grace_s: float) -> None:
        """Take no new replies; let running ones finish within `grace_s`; stop the rest, which
        saves them `failed` with their partial text (their streams get that final event).
        Runs as soon as the server is asked to stop, while streams can still be answered."""
        self.liveness.ready = False
        self.liveness.stopping = True
        pending = set(self._tasks)
        if pending and grace_s > 0:
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        for reply in list(self._running.values()):
            reply.stop("shutdown")
        if pending:
            await asyncio.wait(pending, timeout=FINAL_SAVE_S)

    async def stop(self, grace_s: float) -> None:
        """Finish the replies (see `finish_replies`), then stop the background jobs."""
        await self.finish_replies(grace_s)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        await self._listener.close()

    @property
    def active(self) -> int:
        """Replies this process is generating now."""
        return len(self._running)

    # --- the ReplyHub port --------------------------------------------------------------------

    @property
    def worker_key(self) -> int:
        if not self.liveness.ready:
            raise Unavailable("replies are not being served right now; retry shortly")
        return self._listener.worker_key

    def launch(self, message_id: int, run: Callable[[LiveReply], Awaitable[None]]) -> None:
        reply = RunningReply(message_id, self.writer.save_final)
        self._running[message_id] = reply
        task = asyncio.create_task(self._run(reply, run), name=f"reply-{message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, reply: RunningReply, run: Callable[[LiveReply], Awaitable[None]]) -> None:
        try:
            await run(reply)
        finally:
            self._running.pop(reply.message_id, None)
            if not reply.done.is_set():
                reply.finish(None)

    def follow(self, message_id: int, offset: int) -> AsyncIterator[Progress]:
        return self.followers.follow(message_id, offset)

    async def request_cancel(self, message_id: int) -> None:
        await self.cancellation.request(message_id)

    async def record_usage(self, usage: UsageRecord) -> None:
        await self._store.record_usage(usage)

    async def wait_finished(self, message_id: int, timeout_s: float) -> MessageDTO | None:
        return await self.followers.wait_finished(message_id, timeout_s)
