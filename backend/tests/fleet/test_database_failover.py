"""The database fails over under load: the primary crashes, the synchronous standby is
promoted. The nodes (on a multi-host DATABASE_URL with target_session_attrs=read-write) answer
503 with Retry-After meanwhile — never a hang, never a 500 — find the new primary by themselves
within 30 s of the promotion, and no acknowledged write is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core.settings import Settings
from app.fleet.fleet import Fleet, running_fleet
from tests.fleet.conftest import fleet_options, node_env
from tests.fleet.load import Figures, Load, wait_for
from tests.fleet.postgres_servers import DATABASE, postgres_bin
from tests.fleet.site import Site
from tests.support.database import upgrade
from tests.support.system_tools import missing

Auth = Callable[[str], dict[str, str]]

CRUD_CLIENTS = 6
REPLY_CLIENTS = 10
RECOVERY_BOUND_S = 30.0


async def all_ready(fleet: Fleet) -> bool:
    async with httpx.AsyncClient(timeout=3) as http:
        for node in fleet.nodes.values():
            try:
                if (await http.get(f"{node.url}/health")).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


async def listeners(port: int) -> int:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=DATABASE)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'agent-stack-listener'"
        )
        return count
    finally:
        await conn.close()


@pytest.mark.timeout(180)
async def test_failover_to_the_standby_loses_no_acknowledged_write(
    settings: Settings,
    auth: Auth,
    site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bin_dir = postgres_bin()
    if bin_dir is None:
        missing("PostgreSQL server binaries are not installed (.ci/run installs them)")
    figures = Figures("database failover")
    figures.extra["placement"] = site.placement
    hosts = await site.hosts(2)
    # Primary and standby on the bridge's address too: the nodes' URL names that address.
    cluster = await site.postgres(bin_dir, standby=True)
    await upgrade(cluster.url)  # the multi-host URL, through Alembic too
    env = node_env(
        settings,
        db_connect_timeout_s=2,
        # Replies of about 6 s live through the failover; sweeps run every second.
        simulated_tokens=60,
        simulated_delay_ms=100,
        reply_sweep_s=1,
        idempotency_lock_timeout_s=2,
    )
    options = fleet_options(tmp_path, 2, env, placements=hosts)
    async with running_fleet(options, cluster.url) as fleet:
        site.assert_placed(node.pid for node in fleet.nodes.values())
        load = Load(options.url, auth, figures, deadline_s=100, retry=True)
        clients = [load.crud_client(f"failover-crud-{i}") for i in range(CRUD_CLIENTS)]
        clients += [load.reply_client(f"failover-reply-{i}") for i in range(REPLY_CLIENTS)]
        async with load.running(clients):
            await wait_for(lambda: len(load.acknowledged) >= 30, 60, "writes before")
            before = len(load.acknowledged)
            await asyncio.to_thread(cluster.crash_primary)
            # The outage lasts a while, as a failover takes a while to decide.
            await wait_for(lambda: figures.unavailable >= 10, 20, "503s during the outage")
            assert not await all_ready(fleet)
            await asyncio.to_thread(cluster.promote)
            promoted_at = time.monotonic()
            while not await all_ready(fleet):
                assert time.monotonic() - promoted_at < RECOVERY_BOUND_S, (
                    "the nodes are not ready on the new primary"
                )
                await asyncio.sleep(0.1)
            figures.recovery_s = time.monotonic() - promoted_at
            after = len(load.acknowledged)
            await wait_for(lambda: len(load.acknowledged) >= after + 30, 30, "writes after")
            # Each node's LISTEN session (notifications, liveness lock) is back too.
            while await listeners(cluster.standby_port) < options.nodes:
                assert time.monotonic() - promoted_at < RECOVERY_BOUND_S, (
                    "the nodes' LISTEN sessions did not come back on the new primary"
                )
                await asyncio.sleep(0.1)
            figures.extra["listeners_back_s"] = round(time.monotonic() - promoted_at, 1)

    conn = await asyncpg.connect(
        host="127.0.0.1", port=cluster.standby_port, user="postgres", database=DATABASE
    )
    try:
        assert not await conn.fetchval("SELECT pg_is_in_recovery()")
        sessions: dict[int, str] = {
            row["id"]: row["title"]
            for row in await conn.fetch(
                "SELECT id, title FROM sessions WHERE id = ANY($1::bigint[])",
                list(load.acknowledged),
            )
        }
        messages: dict[int, str] = {
            row["id"]: row["content"]
            for row in await conn.fetch(
                "SELECT id, content FROM messages WHERE id = ANY($1::bigint[])",
                list(load.acknowledged_messages),
            )
        }
    finally:
        await conn.close()
    lost = sum(sessions.get(sid) != title for sid, title in load.acknowledged.items()) + sum(
        messages.get(mid) != note for mid, note in load.acknowledged_messages.items()
    )
    figures.extra.update(
        acknowledged_writes=len(load.acknowledged) + len(load.acknowledged_messages),
        sessions_before_crash=before,
        lost_acknowledged=lost,
    )
    with capsys.disabled():
        print(f"\n{figures.line()}")
    assert figures.unavailable > 0  # the outage was seen, as 503 + Retry-After
    assert figures.failures == 0, figures.examples  # never a 500, never a hang
    assert figures.gave_up == 0, figures.examples
    assert figures.recovery_s <= RECOVERY_BOUND_S
    assert lost == 0
    # Replies live through it too: their progress waits for the database, and no node takes
    # another's reply for orphaned while that node is still reconnecting.
    assert figures.replies_failed == figures.unfinished == 0, figures.examples
    assert figures.duplicates == figures.gaps == figures.mismatches == 0, figures.examples
