"""This process's own PostgreSQL session, outside the pool: it LISTENs for what other server
processes NOTIFY, and holds the advisory lock that tells them this process is alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

import asyncpg

from app.core.database import ConnectParams
from app.persistence.repositories.replies import LOCK_NAMESPACE

log = logging.getLogger(__name__)

Handler = Callable[[str], None]


def _new_key() -> int:
    return secrets.randbelow(2**31 - 1) + 1


class Listener:
    def __init__(self, params: ConnectParams, *, connect_timeout_s: float = 5.0) -> None:
        self._params = params
        self._connect_timeout_s = connect_timeout_s
        self._handlers: dict[str, list[Handler]] = {}
        self._reconnected: list[Callable[[], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._ever_connected = False
        #: Stamped on the replies this process runs; locked while the process lives.
        self.worker_key = _new_key()

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Call `handler(payload)` for every notification on `channel` (register before
        `connect`)."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Called after a lost session is back: notifications sent meanwhile were missed."""
        self._reconnected.append(callback)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def connect(self, *, keep_key: bool) -> None:
        """Open the session, lock a worker key and LISTEN. With `keep_key` (rows still carry
        the current key) wait for its lock to come back instead of taking a new one."""
        conn = await asyncpg.connect(
            **self._params.asyncpg_kwargs(),
            timeout=self._connect_timeout_s,
            server_settings={"application_name": "agent-stack-listener"},
        )
        try:
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, self.worker_key
            ):
                if keep_key:
                    await asyncio.sleep(0.5)
                else:
                    self.worker_key = _new_key()
            for channel in self._handlers:
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        if self._ever_connected:
            for callback in self._reconnected:
                callback()
        self._ever_connected = True

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:  # one bad handler must not silence the others
                log.exception("handling a notification on %s failed", channel)
