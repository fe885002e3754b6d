"""Where a fleet scenario runs: its nodes in network namespaces of their own, separate hosts
on a bridge (`tests.support.netns`), with PostgreSQL servers of the scenario's own listening
on the bridge's address; or, where this process cannot make namespaces (not root, no `ip`) or
has no PostgreSQL server binaries, its nodes as process groups on 127.0.0.1 on the suite's
database, as `make fleet` runs them. HAProxy and the load generator stay in this namespace.

`FLEET_TEST_PLACEMENT=process-groups` asks for the fallback where namespaces would work (to
run the scenarios as they run elsewhere). `close()` (the `site` fixture's finalizer) stops the
databases and tears the network down whatever happened, the processes in the namespaces killed
first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from app.fleet.placement import Placement
from tests.fleet.postgres_servers import PostgresServers, postgres_bin
from tests.support import leftovers, netns
from tests.support.database import upgrade

NETNS = "netns"
PROCESS_GROUPS = "process-groups"
#: Set to `process-groups` to run the scenarios without namespaces.
CHOICE = "FLEET_TEST_PLACEMENT"


def why_not_netns() -> str | None:
    """Why the scenarios do not run in namespaces here; None if they do."""
    if os.environ.get(CHOICE) == PROCESS_GROUPS:
        return f"{CHOICE}={PROCESS_GROUPS}"
    reason = netns.unavailable()
    if reason is None and postgres_bin() is None:
        reason = "no PostgreSQL server binaries for a database the namespaces can reach"
    return reason


class Site:
    def __init__(self) -> None:
        leftovers.sweep()  # what a killed run left: its HAProxy, its PostgreSQL servers
        self.why_not = why_not_netns()
        self.network: netns.Network | None = None
        self.servers: list[PostgresServers] = []

    @property
    def placement(self) -> str:
        """The figures' `placement=`: `netns` or `process-groups`."""
        return PROCESS_GROUPS if self.why_not else NETNS

    async def hosts(self, nodes: int) -> dict[int, Placement]:
        """Where nodes 1..`nodes` run: a namespace each, or (fallback) all on 127.0.0.1."""
        if self.why_not:
            return {}
        assert self.network is None, "one network per scenario"
        self.network = await asyncio.to_thread(netns.create, nodes)
        return self.network.placements()

    async def postgres(self, bin_dir: Path, *, standby: bool) -> PostgresServers:
        """Started servers with an empty database, reachable from the nodes' hosts."""
        servers = PostgresServers(
            bin_dir,
            standby=standby,
            address=self.network.gateway if self.network else "127.0.0.1",
            clients=str(self.network.subnet) if self.network else None,
        )
        self.servers.append(servers)
        await asyncio.to_thread(servers.start)
        await servers.create_database()
        return servers

    async def database(self, suite_url: str) -> str:
        """A migrated database for the nodes: the suite's (`suite_url`) for process groups, a
        server of the scenario's own on the bridge for namespaces (call `hosts` first)."""
        if self.network is None:
            return suite_url
        bin_dir = postgres_bin()
        assert bin_dir is not None  # why_not_netns() checked
        servers = await self.postgres(bin_dir, standby=False)
        await upgrade(servers.url)
        return servers.url

    def assert_placed(self, pids: Iterable[int]) -> None:
        """The processes run where the site put them: each in a network namespace of its own
        (netns), or all in ours (process groups)."""
        ours = os.readlink("/proc/self/ns/net")
        found = [os.readlink(f"/proc/{pid}/ns/net") for pid in pids]
        if self.network is None:
            assert set(found) == {ours}, found
        else:
            assert ours not in found, found
            assert len(set(found)) == len(found), found

    def close(self) -> None:
        try:
            for servers in self.servers:
                servers.destroy()
        finally:
            if self.network is not None:
                with contextlib.suppress(netns.NetnsError):
                    self.network.close()
