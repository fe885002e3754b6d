"""A fleet on one machine: `FLEET_NODES` API nodes on PORT+1..PORT+N behind HAProxy on PORT,
all on one database. Starts and stops them, restarts them one by one (the rolling restart of a
deploy), and kills one for the fault tests.

Every process gets a process group of its own (`app.fleet.processes`), so stopping the fleet,
or a test's clean-up, can kill each whole group whatever happened before. Each node runs where
its `Placement` says: 127.0.0.1 by default; the tests put each in a network namespace of its
own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.fleet import haproxy
from app.fleet.haproxy import Checks
from app.fleet.placement import LOCAL, Placement
from app.fleet.processes import (
    Server,
    ServerError,
    kill_group,
    start_uvicorn,
    stop_process,
    wait_ready,
)

log = logging.getLogger(__name__)

NODE_APP = "app.main:create_served_app"
#: How long a node waits for open connections once it stops listening (uvicorn).
GRACEFUL_S = 10.0
#: How long a node may take to save its replies after the grace period (the runtime's own bound).
FINAL_SAVE_S = 10.0


@dataclass(frozen=True)
class FleetOptions:
    run_dir: Path
    nodes: int = 3
    port: int = 8000
    bind: str = "127.0.0.1"
    checks: Checks = field(default_factory=Checks)
    #: Readiness fails this long after SIGTERM before a node stops listening; default: the
    #: time HAProxy's checks take to notice, plus a margin.
    drain_s: float | None = None
    #: Running replies' time to finish at SIGTERM (REPLY_SHUTDOWN_GRACE_S of the nodes).
    reply_grace_s: float = 5.0
    #: More environment for the nodes (tests: the simulated model's pace, the secret...).
    node_env: Mapping[str, str] = field(default_factory=dict)
    #: Where node i runs; a node not listed runs on 127.0.0.1 (`LOCAL`).
    placements: Mapping[int, Placement] = field(default_factory=dict)

    @property
    def drain(self) -> float:
        return self.drain_s if self.drain_s is not None else self.checks.notice_s + 0.5

    @property
    def stop_timeout_s(self) -> float:
        """The longest a node may take to leave after SIGTERM before it is killed."""
        return self.drain + GRACEFUL_S + self.reply_grace_s + FINAL_SAVE_S + 5

    def node_port(self, index: int) -> int:
        return self.port + index

    def placement(self, index: int) -> Placement:
        return self.placements.get(index, LOCAL)

    def node_address(self, index: int) -> tuple[str, int]:
        """Where node `index` listens, and HAProxy reaches it."""
        return self.placement(index).host, self.node_port(index)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in {"0.0.0.0", "::"} else self.bind  # noqa: S104
        return f"http://{host}:{self.port}"


class Fleet:
    def __init__(self, options: FleetOptions, database_url: str) -> None:
        self.options = options
        self.database_url = database_url
        self.nodes: dict[int, Server] = {}
        self.balancer: asyncio.subprocess.Process | None = None
        options.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def stats_socket(self) -> Path:
        return self.options.run_dir / "haproxy.sock"

    @property
    def config_path(self) -> Path:
        return self.options.run_dir / "haproxy.cfg"

    def node_env(self, index: int) -> dict[str, str]:
        return {
            **self.options.node_env,
            "DATABASE_URL": self.database_url,
            "NODE_NAME": f"node{index}",
            "SHUTDOWN_DRAIN_S": f"{self.options.drain:g}",
            "REPLY_SHUTDOWN_GRACE_S": f"{self.options.reply_grace_s:g}",
        }

    # --- the whole fleet -----------------------------------------------------------------

    async def start(self) -> None:
        """Write HAProxy's configuration, start the nodes, then HAProxy; return once HAProxy
        routes to every node."""
        opts = self.options
        self.config_path.write_text(
            haproxy.render(
                bind=opts.bind,
                port=opts.port,
                nodes=[opts.node_address(i) for i in range(1, opts.nodes + 1)],
                stats_socket=self.stats_socket,
                checks=opts.checks,
            )
        )
        await haproxy.check_config(self.config_path)
        await asyncio.gather(*(self.start_node(i) for i in range(1, opts.nodes + 1)))
        await self._start_balancer()
        for index in self.nodes:
            await self.wait_state(index, "UP")

    async def stop(self) -> None:
        """SIGTERM everything at once (nodes drain); SIGKILL whatever outlives its bound."""
        stops = [
            stop_process(node.process, self.options.stop_timeout_s) for node in self.nodes.values()
        ]
        if self.balancer is not None:
            stops.append(stop_process(self.balancer, 5))
        await asyncio.gather(*stops, return_exceptions=True)

    def kill_all(self) -> None:
        """SIGKILL every process group the fleet started (a finalizer: nothing is left)."""
        for node in self.nodes.values():
            kill_group(node.process)
        if self.balancer is not None:
            kill_group(self.balancer)

    async def rolling_restart(self, report: Callable[[str], None] = log.info) -> None:
        """Restart every node in turn, as a deploy does: SIGTERM, wait for it to exit, start it,
        wait until HAProxy routes to it again; then the next."""
        for index in sorted(self.nodes):
            began = time.monotonic()
            code = await self.stop_node(index)
            report(f"node{index} stopped (exit {code}) after {time.monotonic() - began:.1f} s")
            await self.start_node(index)
            await self.wait_state(index, "UP")
            report(f"node{index} is back in rotation after {time.monotonic() - began:.1f} s")

    # --- one node ------------------------------------------------------------------------

    async def start_node(self, index: int) -> Server:
        """Start node `index` where it is placed and wait until it is ready (`/health` 200)."""
        placement = self.options.placement(index)
        server = await start_uvicorn(
            f"node{index}",
            NODE_APP,
            host=placement.host,
            prefix=placement.prefix,
            port=self.options.node_port(index),
            env=self.node_env(index),
            log_path=self.options.run_dir / f"node{index}.log",
            graceful_s=GRACEFUL_S,
        )
        self.nodes[index] = server
        await wait_ready(server, "/health")
        return server

    async def stop_node(self, index: int) -> int:
        """SIGTERM node `index`; its exit code once it has left (killed after its bound)."""
        return await self.nodes[index].terminate(self.options.stop_timeout_s)

    async def kill_node(self, index: int) -> int:
        return await self.nodes[index].kill()

    async def states(self) -> dict[int, str]:
        """Each node's status in HAProxy (`UP`, `DOWN`, ...)."""
        found = await haproxy.server_states(self.stats_socket)
        return {int(name.removeprefix("node")): status for name, status in found.items()}

    async def wait_state(self, index: int, status: str, timeout_s: float = 30.0) -> float:
        """Until HAProxy reports node `index` as `status`; the seconds it took."""
        began = time.monotonic()
        while True:
            with contextlib.suppress(OSError):
                if (await self.states()).get(index) == status:
                    return time.monotonic() - began
            if time.monotonic() - began > timeout_s:
                raise ServerError(f"node{index} is not {status} in HAProxy after {timeout_s:.0f} s")
            await asyncio.sleep(0.05)

    # --- HAProxy ---------------------------------------------------------------------------

    async def _start_balancer(self) -> None:
        binary = haproxy.binary()
        self.stats_socket.unlink(missing_ok=True)
        if binary is None:
            raise ServerError("haproxy is not installed (make fleet-deps installs it)")
        with (self.options.run_dir / "haproxy.log").open("ab") as out:
            self.balancer = await asyncio.create_subprocess_exec(
                binary, "-db", "-f", str(self.config_path),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.stats_socket.exists():
            if self.balancer.returncode is not None or time.monotonic() > deadline:
                raise ServerError(f"haproxy did not start: see {self.options.run_dir}/haproxy.log")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_fleet(options: FleetOptions, database_url: str) -> AsyncIterator[Fleet]:
    """A started fleet, stopped (and every process group killed) however the block ends."""
    fleet = Fleet(options, database_url)
    try:
        await fleet.start()
        yield fleet
    finally:
        try:
            await asyncio.shield(fleet.stop())
        finally:
            fleet.kill_all()
