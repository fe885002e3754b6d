"""Real uvicorn processes on 127.0.0.1, one worker each, stopped however the run ends.

The one launcher of server processes: the benchmarks and the tests that need a second process
(tests/replies/test_multiprocess.py) both start servers with `uvicorn_server`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import BACKEND_DIR
from bench.support.errors import BenchError

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def event_loop_and_parser() -> tuple[str, str]:
    """What uvicorn's `auto` picks here; pinned explicitly so both servers run alike."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


@dataclass
class Server:
    name: str
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

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
        """SIGTERM, as a process manager stops a server; its exit code once it has stopped."""
        await _stop(self.process, timeout_s)
        assert self.process.returncode is not None
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


async def _wait_ready(server: Server, path: str, headers: Mapping[str, str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                raise BenchError(
                    f"{server.name} exited with {server.process.returncode} on start-up:\n"
                    f"{server.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                response = await client.get(path, headers=dict(headers))
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise BenchError(f"{server.name} did not answer 200 on {path} within {START_TIMEOUT_S:.0f} s")


async def _stop(process: asyncio.subprocess.Process, timeout_s: float = STOP_TIMEOUT_S) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def uvicorn_server(
    name: str,
    app: str,
    *,
    env: Mapping[str, str],
    ready_path: str,
    ready_headers: Mapping[str, str] | None = None,
    factory: bool = True,
    port: int | None = None,
    graceful_s: float | None = None,
) -> AsyncIterator[Server]:
    """Serve `app` ("module:attr") with one uvicorn worker until the block exits.

    Production-like: log level warning, no access log, uvloop + httptools when installed. The
    process gets its own session so a Ctrl-C reaches us first and we stop it in order.
    """
    loop, http = event_loop_and_parser()
    port = port or free_port()
    fd, log_name = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
    log_path = Path(log_name)
    args = [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", loop, "--http", http,
        "--log-level", "warning", "--no-access-log",
        "--app-dir", str(BACKEND_DIR),
    ]  # fmt: skip
    if factory:
        args.append("--factory")
    if graceful_s is not None:
        args += ["--timeout-graceful-shutdown", f"{graceful_s:g}"]
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=BACKEND_DIR,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        await _wait_ready(server, ready_path, ready_headers or {})
        yield server
    finally:
        await asyncio.shield(_stop(process))
        log_path.unlink(missing_ok=True)  # noqa: ASYNC240 - a tiny local file
