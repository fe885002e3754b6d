"""Cancel a reply wherever it runs: directly when this process generates it, else by a flag on
the row plus a NOTIFY. The generating process stops the model call on the NOTIFY, or at its next
progress round if the NOTIFY was lost (the writer reads the flag back with every append)."""

from __future__ import annotations

from app.replies.live import RunningReply
from app.replies.store import ReplyStore


class Cancellation:
    def __init__(self, store: ReplyStore, running: dict[int, RunningReply]) -> None:
        self._store = store
        self._running = running

    async def request(self, message_id: int) -> None:
        reply = self._running.get(message_id)
        if reply is not None:
            reply.stop("cancelled")
            return
        await self._store.request_cancel(message_id)

    def on_cancel(self, payload: str) -> None:
        """The cancel NOTIFY, from whichever process was asked."""
        if payload.isdigit() and (reply := self._running.get(int(payload))) is not None:
            reply.stop("cancelled")
