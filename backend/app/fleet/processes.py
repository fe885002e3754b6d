"""Server processes: uvicorn, one worker each, in a process group of its own; on 127.0.0.1
unless told another address and a command prefix that places it elsewhere (a network
namespace: `app.fleet.placement`).

The one launcher of server processes: the fleet (`app.fleet.fleet`), the benchmarks and the
tests that need separate processes all start them here (the benchmarks and tests through
`bench.support.servers.uvicorn_server`). Each process gets its own session, so a terminal's
Ctrl-C reaches its owner first and the owner stops it in order; and a whole group can be killed,
whatever it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

BACKEND_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class ServerError(RuntimeError):
    """A server process did not start, or did not answer as it should."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_block(count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive free ports (a fleet: HAProxy on it, nodes after it)."""
    for _ in range(attempts):
        base = secrets.randbelow(30_000) + 20_000
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise ServerError(f"found no {count} consecutive free ports")


def event_loop_and_parser() -> tuple[str, str]:
    """What uvicorn's `auto` picks here; pinned explicitly so all servers run alike."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


@dataclass
class Server:
    name: str
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server has used so far (Linux /proc), else None.

        CPU per request is far steadier than requests per second on a shared machine: it does
        not move when a neighbour steals a core, only when the code does more work.
        """
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # After the ")" closing the command name, utime and stime are the 12th and 13th fields.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float | None:
        """The process's resident-set high-water mark (Linux /proc VmHWM), else None."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    async def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, as a process manager stops a server; its exit code once it has stopped
        (SIGKILL to its group after `timeout_s`)."""
        await stop_process(self.process, timeout_s)
        assert self.process.returncode is not None
        return self.process.returncode

    async def kill(self) -> int:
        """SIGKILL to the whole process group: a node that dies without a word."""
        kill_group(self.process)
        return await self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the process's group (it leads one: started with a session of its own)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


async def stop_process(
    process: asyncio.subprocess.Process, timeout_s: float = STOP_TIMEOUT_S
) -> None:
    """SIGTERM; after `timeout_s`, SIGKILL to its group. Returns once it has exited."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            kill_group(process)
    await process.wait()


async def start_uvicorn(
    name: str,
    app: str,
    *,
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
    factory: bool = True,
    graceful_s: float | None = None,
    log_level: str = "warning",
) -> Server:
    """Start `app` ("module:attr") under uvicorn, one worker, output appended to `log_path`.

    Production-like: no uvicorn access log, uvloop + httptools when installed. Listens on
    `host`; `prefix` is run with uvicorn's command line as its arguments and must exec it in
    place (`ip netns exec NAME`), so that the process started here, its pid and its process
    group are the server's. Does not wait for it to answer (see `wait_ready`).
    """
    loop, http = event_loop_and_parser()
    args = [
        *prefix, sys.executable, "-m", "uvicorn", app,
        "--host", host, "--port", str(port),
        "--workers", "1", "--loop", loop, "--http", http,
        "--log-level", log_level, "--no-access-log",
        "--app-dir", str(BACKEND_DIR),
    ]  # fmt: skip
    if factory:
        args.append("--factory")
    if graceful_s is not None:
        args += ["--timeout-graceful-shutdown", f"{graceful_s:g}"]
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=BACKEND_DIR,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    return Server(name, f"http://{host}:{port}", process, log_path)


async def wait_ready(
    server: Server,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Until `path` answers 200; ServerError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                raise ServerError(
                    f"{server.name} exited with {server.process.returncode} on start-up:\n"
                    f"{server.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                response = await client.get(path, headers=dict(headers or {}))
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise ServerError(f"{server.name} did not answer 200 on {path} within {timeout_s:.0f} s")
