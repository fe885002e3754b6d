"""One reply being generated in this process: its text so far, its followers, its stop switch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from app.domain.dtos import MessageDTO
from app.domain.reply_runtime import ReplyOutcome, StopReason

SaveFinal = Callable[[int, ReplyOutcome], Awaitable[MessageDTO | None]]


class RunningReply:
    """Implements the domain's `LiveReply` for the process that runs the model.

    Text is kept in memory (followers in this process read it from here, token by token) and
    appended to the database by the progress writer: `persisted` is how much of it is stored.
    """

    def __init__(self, message_id: int, save: SaveFinal) -> None:
        self.message_id = message_id
        self._save = save
        self.persisted = 0
        #: Set once the final state is being saved: no more progress appends for this reply.
        self.ending = False
        self.done = asyncio.Event()
        self.final: MessageDTO | None = None
        self._parts: list[str] = []
        self._joined = ""
        self._length = 0
        self._stop_reason: StopReason | None = None
        self._task: asyncio.Task[object] | None = None
        self._sealed = False
        self._waiters: list[asyncio.Future[None]] = []
        self._end_waiters: list[asyncio.Future[None]] = []

    @property
    def length(self) -> int:
        return self._length

    @property
    def text(self) -> str:
        if len(self._joined) != self._length:
            self._joined = "".join(self._parts)
            self._parts = [self._joined]
        return self._joined

    @property
    def stop_reason(self) -> StopReason | None:
        return self._stop_reason

    def append(self, text: str) -> None:
        if text:
            self._parts.append(text)
            self._length += len(text)
            self._wake()

    @asynccontextmanager
    async def stoppable(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        if self._stop_reason is not None:
            task.cancel()
        try:
            yield
        except asyncio.CancelledError:
            if self._stop_reason is None:
                raise  # not our stop: somebody else is cancelling the task
            task.uncancel()
        finally:
            self._task = None
            self._sealed = True

    def stop(self, reason: StopReason) -> None:
        """Interrupt the model call; ignored once the model is done (the outcome is decided)."""
        if self._sealed or self._stop_reason is not None:
            return
        self._stop_reason = reason
        if self._task is not None:
            self._task.cancel()

    async def end(self, outcome: ReplyOutcome | None) -> None:
        self.ending = True
        self.finish(await self._save(self.message_id, outcome) if outcome is not None else None)

    def finish(self, final: MessageDTO | None) -> None:
        self.final = final
        self.done.set()
        self._wake()
        _resolve_all(self._end_waiters)

    def nudge(self) -> None:
        """Wake the followers without news, so they look at their own state (released?)."""
        self._wake()

    def changed(self) -> asyncio.Future[None]:
        """A future resolved at the next append or at the end: register before reading."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        return future

    async def pause(self, seconds: float) -> None:
        """Sleep up to `seconds`, or until the reply is done (its end is never held back)."""
        if self.done.is_set():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._end_waiters.append(future)
        timer = loop.call_later(seconds, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):  # gone already if the reply ended
                self._end_waiters.remove(future)

    def _wake(self) -> None:
        _resolve_all(self._waiters)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        _resolve(future)
    futures.clear()
