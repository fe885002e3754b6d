"""A deploy under load: every node restarted in turn (SIGTERM, wait, start) while 200 replies
stream and CRUD clients run, through HAProxy. Nothing may fail: draining nodes leave rotation
first, finish their requests, hand their streams off (clients reconnect with Last-Event-ID to
another node) and finish their replies within the grace period."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.core.settings import Settings
from app.fleet.fleet import Fleet, running_fleet
from tests.fleet.conftest import fleet_options, node_env
from tests.fleet.load import Figures, Load, wait_for
from tests.fleet.site import Site

Auth = Callable[[str], dict[str, str]]

STREAMS = 200
CRUD_CLIENTS = 6


async def who_answers(fleet: Fleet) -> dict[str, int]:
    """Each node's name and process id, from its own `/health/live`."""
    async with httpx.AsyncClient(timeout=5) as http:
        found = [
            (await http.get(f"{node.url}/health/live")).json() for node in fleet.nodes.values()
        ]
    return {body["node"]: body["pid"] for body in found}


@pytest.mark.timeout(240)
async def test_rolling_restart_under_load_loses_nothing(
    settings: Settings,
    auth: Auth,
    site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert settings.database_url is not None
    hosts = await site.hosts(3)
    database_url = await site.database(settings.database_url)
    # Replies of about 3 s: several generations of them live through each restart.
    env = node_env(settings, simulated_tokens=30, simulated_delay_ms=100)
    options = fleet_options(tmp_path, 3, env, reply_grace_s=15, placements=hosts)
    figures = Figures("rolling restart")
    figures.extra["placement"] = site.placement
    steps: list[str] = []
    async with running_fleet(options, database_url) as fleet:
        load = Load(options.url, auth, figures, deadline_s=180, retry=False)
        clients = [load.reply_client(f"roll-reply-{i}") for i in range(STREAMS)]
        clients += [load.crud_client(f"roll-crud-{i}") for i in range(CRUD_CLIENTS)]
        before = await who_answers(fleet)
        site.assert_placed(node.pid for node in fleet.nodes.values())
        async with load.running(clients):
            await wait_for(lambda: load.streaming >= STREAMS, 90, f"{STREAMS} replies streaming")
            began = time.monotonic()
            await fleet.rolling_restart(steps.append)
            figures.extra["restart_s"] = round(time.monotonic() - began, 1)
        after = await who_answers(fleet)
        site.assert_placed(after.values())  # restarted where they were
    with capsys.disabled():
        print("", *steps, figures.line(), sep="\n")
    # Every node was restarted: same names, new processes.
    assert sorted(before) == sorted(after) == ["node1", "node2", "node3"]
    assert not set(before.values()) & set(after.values())
    assert figures.failures == 0, figures.examples
    assert figures.unavailable == 0, figures.examples
    assert figures.gave_up == 0, figures.examples
    assert figures.unfinished == 0, figures.examples
    assert figures.replies_failed == 0, figures.examples
    assert figures.duplicates == figures.gaps == figures.mismatches == 0, figures.examples
    assert figures.replies >= STREAMS
    assert figures.resumed > 0  # streams really moved between nodes
