"""Liveness across processes: nothing stays `streaming` after the process generating it died.

Each process holds a session advisory lock on its worker key through its listener session; a
`streaming` row whose key nobody holds belongs to a dead process, and the sweep (at start-up,
then every `sweep_s`) fails it, keeping its partial text. The supervisor also brings a lost
listener session back.
"""

from __future__ import annotations

import asyncio
import logging

from app.persistence.listener import Listener
from app.replies.live import RunningReply
from app.replies.store import ReplyStore

log = logging.getLogger(__name__)

ORPHAN_ERROR = "the server generating this reply stopped before it finished"
#: Retry delays of the supervisor while the database is away.
MIN_DELAY_S, MAX_DELAY_S = 0.5, 10.0
#: After this process gets its session back (the database restarted, or failed over to a
#: standby, whose advisory locks start empty), the other processes come back within their own
#: retry delay plus a connection attempt: until then their replies look orphaned, so no sweep.
SETTLE_S = 2 * MAX_DELAY_S


class Liveness:
    def __init__(
        self,
        listener: Listener,
        store: ReplyStore,
        running: dict[int, RunningReply],
        *,
        sweep_s: float,
    ) -> None:
        self._listener = listener
        self._store = store
        self._running = running
        self._sweep_s = sweep_s
        #: Replies are served once the listener holds our key and orphans were swept.
        self.ready = False
        self.stopping = False

    async def try_start(self) -> None:
        """Connect and sweep now if the database is there; otherwise the supervisor keeps
        trying (the API still starts; new replies answer 503 until then)."""
        try:
            await self._listener.connect(keep_key=False)
            await self.sweep()
            self.ready = True
        except Exception as exc:
            log.warning("replies cannot reach the database yet (%r); retrying", exc)

    async def supervise(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_s
        delay = MIN_DELAY_S
        while True:
            await asyncio.sleep(delay)
            try:
                if not self._listener.connected:
                    # Our rows carry the current key: keep it while any of them runs.
                    await self._listener.connect(keep_key=bool(self._running))
                    next_sweep = max(next_sweep, loop.time() + SETTLE_S)
                if not self.ready and not self.stopping:
                    await self.sweep()
                    self.ready = True
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self._sweep_s
                    await self.sweep()
                delay = MIN_DELAY_S
            except Exception as exc:
                log.warning("reply liveness upkeep failed: %r", exc)
                delay = min(delay * 2, MAX_DELAY_S)

    async def sweep(self) -> list[int]:
        """Fail the streaming replies of processes that are gone; return their ids."""
        ids = await self._store.fail_orphans(ORPHAN_ERROR)
        if ids:
            log.warning("marked %d orphaned streaming replies failed", len(ids))
        return ids
