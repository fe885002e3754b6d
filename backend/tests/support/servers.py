"""Real uvicorn servers on 127.0.0.1 for the tests where sockets matter."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

BACKEND_DIR = Path(__file__).resolve().parents[2]


@dataclass
class InProcessServer:
    app: FastAPI
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def shutdown(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)


@asynccontextmanager
async def serve_in_process(app: FastAPI) -> AsyncIterator[InProcessServer]:
    """Run `app` under uvicorn on this event loop, on a free port, lifespan included."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    running = InProcessServer(app, f"http://127.0.0.1:{port}", server, task)
    try:
        yield running
    finally:
        if not task.done():
            await running.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str

    async def terminate(self, timeout_s: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, timeout_s)


@asynccontextmanager
async def serve_subprocess(env: dict[str, str]) -> AsyncIterator[ServerProcess]:
    """A second server process on the same database: `python -m uvicorn app.main:create_app`."""
    port = free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 -- starting it does not block
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "2",
        ],
        cwd=BACKEND_DIR,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError(f"server process exited with {process.returncode}")
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("server process did not become healthy")
        yield ServerProcess(process, url)
    finally:
        if process.poll() is None:
            process.kill()
        await asyncio.to_thread(process.wait, 30)
