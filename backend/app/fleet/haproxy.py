"""HAProxy for the fleet: its configuration (from `haproxy.cfg.template`), its process, and
what it thinks of each node (read from its stats socket)."""

from __future__ import annotations

import asyncio
import csv
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).with_name("haproxy.cfg.template")


@dataclass(frozen=True, slots=True)
class Checks:
    """How HAProxy checks the nodes: every `interval_ms`; `fall` failures take a node out,
    `rise` successes put it back."""

    interval_ms: int = 500
    fall: int = 2
    rise: int = 2

    @property
    def notice_s(self) -> float:
        """How long HAProxy may take to take a failing node out: `fall` checks, plus the one
        that was already under way."""
        return (self.fall + 1) * self.interval_ms / 1000


def render(
    *,
    bind: str,
    port: int,
    nodes: Sequence[tuple[str, int]],
    stats_socket: Path,
    checks: Checks,
) -> str:
    """The configuration: HAProxy on `bind:port`, node i (from 1) at nodes[i-1], an (IPv4
    address, port) pair."""
    servers = "\n".join(
        f"    server node{i} {host}:{node_port}" for i, (host, node_port) in enumerate(nodes, 1)
    )
    return Template(TEMPLATE.read_text()).substitute(
        bind=bind,
        port=port,
        stats_socket=stats_socket,
        check_ms=checks.interval_ms,
        fall=checks.fall,
        rise=checks.rise,
        servers=servers,
    )


def binary() -> str | None:
    return shutil.which("haproxy")


async def check_config(config: Path) -> None:
    """`haproxy -c`: RuntimeError with HAProxy's words if the configuration is refused."""
    haproxy = binary() or "haproxy"
    process = await asyncio.create_subprocess_exec(
        haproxy, "-c", "-q", "-f", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"haproxy refused {config}:\n{output.decode(errors='replace')}")


async def server_states(stats_socket: Path) -> dict[str, str]:
    """Each node's status as HAProxy sees it now: `UP`, `DOWN`, `UP 1/2` (going down)..."""
    reader, writer = await asyncio.open_unix_connection(str(stats_socket))
    try:
        writer.write(b"show stat\n")
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    lines = raw.decode().lstrip("# ").splitlines()
    return {
        row["svname"]: row["status"]
        for row in csv.DictReader(lines)
        if row.get("pxname") == "nodes" and row.get("svname") not in {"BACKEND", "FRONTEND"}
    }
