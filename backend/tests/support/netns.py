"""Network namespaces as separate hosts for the fleet tests: a bridge in this (the root)
namespace with an address of a free 10.x.y.0/24, and one namespace per node joined to it by a
veth pair, with `lo` up, an address of its own and a default route through the bridge.

Root and `ip` (iproute2) only; `unavailable()` says why not, and the tests then run their
nodes as process groups on 127.0.0.1 instead. Every name carries the pid of the test process
that made it (`agst-<pid>-<i>` namespaces, `agstbr<pid>` bridges, `agstv<pid>n<i>` and
`agstp<pid>n<i>` veths, at most 15 characters), so `sweep()` can remove what an earlier run
left behind after being killed, and nothing of a run still going. Subnets are picked under a
file lock, so that two runs at once never pick the same one.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from app.core.metrics import pid_alive
from app.fleet.placement import Placement

PREFIX = "agst"
NAMESPACE = re.compile(rf"^{PREFIX}-(\d+)-")
LINK = re.compile(rf"^{PREFIX}(?:br|v|p)(\d+)")
#: Candidate subnets: 10.213.y.0/24 for y from a pid-derived start.
SECOND_OCTET = 213
LOCK = Path(tempfile.gettempdir()) / "agent-stack-netns.lock"


class NetnsError(RuntimeError):
    """An `ip` command failed."""


def ip_binary() -> str | None:
    return shutil.which("ip") or next(
        (path for path in ("/usr/sbin/ip", "/sbin/ip") if os.access(path, os.X_OK)), None
    )


def ip(*args: str, check: bool = True) -> str:
    binary = ip_binary()
    if binary is None:
        raise NetnsError("`ip` (iproute2) is not installed")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=30, check=False
    )
    if check and result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


@cache
def unavailable() -> str | None:
    """Why this process cannot make namespaces and bridges; None if it can (a trial of both)."""
    if os.geteuid() != 0:
        return "not root"
    if ip_binary() is None:
        return "`ip` (iproute2) is not installed"
    # Names of their own: a network of this process may exist already.
    probe, bridge = f"{PREFIX}-{os.getpid()}-probe", f"{PREFIX}v{os.getpid()}x"
    try:
        ip("netns", "add", probe)
        ip("link", "add", bridge, "type", "bridge")
    except NetnsError as exc:
        return str(exc)
    finally:
        ip("link", "del", bridge, check=False)
        ip("netns", "del", probe, check=False)
    return None


@dataclass(frozen=True, slots=True)
class Host:
    namespace: str
    address: str
    veth: str  # its end of the veth pair in the root namespace

    @property
    def placement(self) -> Placement:
        return Placement(
            host=self.address, prefix=(ip_binary() or "ip", "netns", "exec", self.namespace)
        )


@dataclass
class Network:
    bridge: str
    subnet: ipaddress.IPv4Network
    hosts: list[Host] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        """The bridge's address: the root namespace (HAProxy, the databases) as the hosts see
        it."""
        return str(self.subnet.network_address + 1)

    def placements(self) -> dict[int, Placement]:
        """Node i (from 1) on host i."""
        return {index: host.placement for index, host in enumerate(self.hosts, 1)}

    def close(self) -> None:
        """Kill every process in the namespaces, delete them, their veths and the bridge."""
        for host in self.hosts:
            remove_namespace(host.namespace)
            ip("link", "del", host.veth, check=False)
        ip("link", "del", self.bridge, check=False)


def remove_namespace(name: str) -> None:
    """SIGKILL what runs in namespace `name` (bounded wait for it to go), then delete it."""
    deadline = time.monotonic() + 10
    while pids := [int(pid) for pid in ip("netns", "pids", name, check=False).split()]:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    ip("netns", "del", name, check=False)


def sweep() -> list[str]:
    """Remove the namespaces and links of runs whose process no longer exists; what it removed."""
    removed: list[str] = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        found = NAMESPACE.match(name)
        if found and not pid_alive(int(found.group(1))):
            remove_namespace(name)
            removed.append(name)
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        found = LINK.match(name)
        if found and not pid_alive(int(found.group(1))):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network on this machine's interfaces and in its routes."""
    used = [
        ipaddress.IPv4Interface(line.split()[3]).network
        for line in ip("-o", "-4", "addr", "show").splitlines()
    ]
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        # `10.1.0.0/16 via …`, `local 127.0.0.1 dev lo …`; `default` overlaps nothing here.
        for word in line.split()[:2]:
            with contextlib.suppress(ValueError):
                used.append(ipaddress.IPv4Network(word, strict=False))
                break
    return used


@contextlib.contextmanager
def _subnet_lock() -> Iterator[None]:
    """Two test runs at once must not pick the same subnet."""
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_subnet() -> ipaddress.IPv4Network:
    used = used_networks()
    start = os.getpid() % 256
    for step in range(256):
        candidate = ipaddress.IPv4Network(f"10.{SECOND_OCTET}.{(start + step) % 256}.0/24")
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise NetnsError(f"no free /24 in 10.{SECOND_OCTET}.0.0/16")


def create(hosts: int) -> Network:
    """A bridge and `hosts` namespaces (at most 9) on it; torn down again if any step fails."""
    assert 0 < hosts < 10, "interface names hold one digit for the host"
    sweep()
    pid = os.getpid()
    bridge = f"{PREFIX}br{pid}"
    with _subnet_lock():
        network = Network(bridge, _free_subnet())
        try:
            ip("link", "add", bridge, "type", "bridge")
            ip("addr", "add", f"{network.gateway}/{network.subnet.prefixlen}", "dev", bridge)
        except BaseException:
            network.close()
            raise
    try:
        ip("link", "set", bridge, "up")
        for index in range(1, hosts + 1):
            host = Host(
                namespace=f"{PREFIX}-{pid}-{index}",
                address=str(network.subnet.network_address + 1 + index),
                veth=f"{PREFIX}v{pid}n{index}",
            )
            network.hosts.append(host)
            _join(network, host, peer=f"{PREFIX}p{pid}n{index}")
    except BaseException:
        network.close()
        raise
    return network


def _join(network: Network, host: Host, peer: str) -> None:
    """Namespace `host` with `eth0` (its end of a veth pair whose other end is on the bridge)."""
    ns = host.namespace
    ip("netns", "add", ns)
    ip("link", "add", host.veth, "type", "veth", "peer", "name", peer)
    ip("link", "set", host.veth, "master", network.bridge, "up")
    ip("link", "set", peer, "netns", ns)
    ip("-n", ns, "link", "set", peer, "name", "eth0")
    ip("-n", ns, "addr", "add", f"{host.address}/{network.subnet.prefixlen}", "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "route", "add", "default", "via", network.gateway)


@contextlib.contextmanager
def network(hosts: int) -> Iterator[Network]:
    """`create(hosts)`, closed however the block ends."""
    made = create(hosts)
    try:
        yield made
    finally:
        made.close()
