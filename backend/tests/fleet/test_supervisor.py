"""`make fleet` / `make fleet-restart`: the supervisor runs the fleet and performs a rolling
restart when asked on its control socket."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from app.core.settings import Settings
from app.fleet.supervisor import CONTROL_SOCKET, request_restart, supervise
from tests.fleet.conftest import fleet_options, node_env
from tests.fleet.load import wait_for


async def node_of(url: str) -> tuple[str, int]:
    async with httpx.AsyncClient(timeout=5) as http:
        body = (await http.get(f"{url}/health/live")).json()
    return body["node"], body["pid"]


@pytest.mark.timeout(120)
async def test_fleet_restart_asks_the_running_fleet(settings: Settings, tmp_path: Path) -> None:
    assert settings.database_url is not None
    assert not await request_restart(tmp_path)  # no fleet there: refused, nothing hangs
    options = fleet_options(tmp_path, 1, node_env(settings))
    stop = asyncio.Event()
    running = asyncio.create_task(supervise(options, settings.database_url, stop))
    try:
        control = tmp_path / CONTROL_SOCKET
        await wait_for(lambda: control.exists() or running.done(), 60, "the fleet is up")
        name, pid = await node_of(options.url)  # through HAProxy
        assert await request_restart(tmp_path)
        again = await node_of(options.url)
        assert again[0] == name == "node1"
        assert again[1] != pid
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 60)
    assert running.done()
    assert running.exception() is None
    assert not (tmp_path / CONTROL_SOCKET).exists()
