"""The fleet tests' network namespaces (`tests.support.netns`): a node placed in one is a host
of its own that the fleet still signals and kills as its own process group; nothing outlives
the network, nor a run that was killed; and where the tests can make namespaces (root, `ip`,
PostgreSQL's server binaries: CI's machines) the scenarios do run in them."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.fleet.processes import Server, free_port, start_uvicorn, wait_ready
from tests.fleet.postgres_servers import postgres_bin
from tests.fleet.site import CHOICE, NETNS, PROCESS_GROUPS, Site
from tests.support import netns
from tests.support.system_tools import missing

WHOAMI = "tests.fleet.whoami_app:app"


@pytest.fixture
def network() -> Iterator[netns.Network]:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    with netns.network(2) as made:
        yield made


def links() -> str:
    return netns.ip("-o", "link", "show")


def test_where_namespaces_work_the_scenarios_use_them() -> None:
    if os.geteuid() != 0 or netns.ip_binary() is None:
        pytest.skip("not root, or no `ip`: the scenarios run as process groups on 127.0.0.1")
    if os.environ.get(CHOICE) == PROCESS_GROUPS:
        pytest.skip(f"{CHOICE}={PROCESS_GROUPS} asks for the fallback")
    if postgres_bin() is None:
        missing("PostgreSQL server binaries are not installed (.ci/run installs them)")
    reason = netns.unavailable()
    if reason is not None:  # e.g. a container without the capability
        missing(f"root with `ip`, yet no network namespace can be made: {reason}")
    site = Site()
    try:
        assert site.why_not is None
        assert site.placement == NETNS
    finally:
        site.close()


async def start_whoami(network: netns.Network, port: int, log_path: Path) -> Server:
    """The bare app, placed as node 1 would be; once it answers."""
    placement = network.placements()[1]
    server = await start_uvicorn(
        "whoami", WHOAMI, port=port, env={}, log_path=log_path,
        host=placement.host, prefix=placement.prefix, factory=False,
    )  # fmt: skip
    await wait_ready(server, "/")
    return server


async def test_a_node_in_a_namespace_is_a_host_of_its_own(
    network: netns.Network, tmp_path: Path
) -> None:
    host = network.hosts[0]
    port = free_port()
    server = await start_whoami(network, port, tmp_path / "whoami.log")
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            body = (await http.get(f"{server.url}/")).json()
        assert server.url == f"http://{host.address}:{port}"
        # `ip netns exec` replaced itself with the server: same pid, its own group and session.
        assert body["pid"] == server.pid == os.getpgid(server.pid) == os.getsid(server.pid)
        # Its own network: not ours, reached from ours over the bridge, not on our loopback.
        assert os.readlink(f"/proc/{server.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert str(server.pid) in netns.ip("netns", "pids", host.namespace).split()
        assert body["client"] == network.gateway
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(timeout=2) as http:
                await http.get(f"http://127.0.0.1:{port}/")
    finally:
        # SIGTERM reaches the server itself, which stops on it (uvicorn then re-raises it),
        # well before the SIGKILL to its group that would follow its bound.
        assert await server.terminate() == -signal.SIGTERM
    # SIGKILL to its group takes it down too (a node that dies without a word).
    again = await start_whoami(network, port, tmp_path / "whoami.log")
    assert await again.kill() == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.killpg(again.pid, 0)


def test_closing_the_network_leaves_nothing(tmp_path: Path) -> None:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    made = netns.create(2)
    names = [host.namespace for host in made.hosts]
    try:
        assert set(names) <= set(netns.ip("netns", "list").split())
        assert made.bridge in links()
        # A process still running in a namespace does not keep it alive: it is killed first.
        sleeper = subprocess.Popen([*made.hosts[1].placement.prefix, "sleep", "60"])
    finally:
        made.close()
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not set(names) & set(netns.ip("netns", "list").split())
    assert made.bridge not in links()
    assert not any(host.veth in links() for host in made.hosts)


def test_sweep_removes_what_a_killed_run_left() -> None:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    gone = subprocess.Popen(["true"])
    gone.wait()
    namespace, bridge = f"{netns.PREFIX}-{gone.pid}-1", f"{netns.PREFIX}br{gone.pid}"
    ours = f"{netns.PREFIX}-{os.getpid()}-9"  # a run still going keeps its namespace
    netns.ip("netns", "add", namespace)
    netns.ip("netns", "add", ours)
    netns.ip("link", "add", bridge, "type", "bridge")
    try:
        removed = netns.sweep()
        assert namespace in removed
        assert bridge in removed
        assert ours not in removed
        assert namespace not in netns.ip("netns", "list")
        assert bridge not in links()
        assert ours in netns.ip("netns", "list")
    finally:
        netns.ip("netns", "del", namespace, check=False)
        netns.ip("netns", "del", ours, check=False)
        netns.ip("link", "del", bridge, check=False)
