"""Real uvicorn processes on 127.0.0.1, one worker each, stopped however the run ends.

The benchmarks and the tests that need a second process (tests/replies/test_multiprocess.py)
start servers with `uvicorn_server`, on the one launcher of server processes
(`app.fleet.processes`), which the fleet uses too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from app.fleet.processes import (
    Server,
    ServerError,
    event_loop_and_parser,
    free_port,
    start_uvicorn,
    stop_process,
    wait_ready,
)
from bench.support.errors import BenchError

__all__ = ["Server", "event_loop_and_parser", "free_port", "uvicorn_server"]


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
    """Serve `app` ("module:attr") with one uvicorn worker until the block exits (log level
    warning; the log file is removed afterwards)."""
    fd, log_name = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
    log_path = Path(log_name)
    os.close(fd)
    server = await start_uvicorn(
        name,
        app,
        port=port or free_port(),
        env=env,
        log_path=log_path,
        factory=factory,
        graceful_s=graceful_s,
    )
    try:
        try:
            await wait_ready(server, ready_path, ready_headers)
        except ServerError as exc:
            raise BenchError(str(exc)) from exc
        yield server
    finally:
        await asyncio.shield(stop_process(server.process))
        log_path.unlink(missing_ok=True)  # noqa: ASYNC240 - a tiny local file
