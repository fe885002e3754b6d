"""Real uvicorn servers on 127.0.0.1 for the tests where sockets matter: in this process (on
the test's event loop). Server processes come from the benchmarks' launcher,
`bench.support.servers.uvicorn_server`, the one that starts them for both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI


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
