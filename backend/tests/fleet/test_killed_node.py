"""A node killed (SIGKILL) under load: HAProxy stops routing to it within its checks; only the
requests in flight on it fail, and their retries with the same Idempotency-Key succeed exactly
once; its replies end `failed` within REPLY_SWEEP_S and their resumed clients get the final
`error` event; the survivors carry the load."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.database import async_url
from app.core.settings import Settings
from app.fleet.fleet import running_fleet
from tests.fleet.conftest import CHECKS, fleet_options, node_env
from tests.fleet.load import Figures, Load, wait_for
from tests.fleet.site import Site

Auth = Callable[[str], dict[str, str]]

STREAMS = 30
CRUD_CLIENTS = 6
SWEEP_S = 2.0
VICTIM = 2


@pytest.mark.timeout(150)
async def test_a_killed_node_fails_only_what_it_held(
    settings: Settings,
    auth: Auth,
    site: Site,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert settings.database_url is not None
    hosts = await site.hosts(3)
    database_url = await site.database(settings.database_url)
    env = node_env(
        settings,
        simulated_tokens=60,
        simulated_delay_ms=100,
        reply_sweep_s=SWEEP_S,
        # A request killed between claiming its key and finishing leaves the claim behind:
        # its retries answer 409 until the claim may be taken over.
        idempotency_lock_timeout_s=2,
    )
    options = fleet_options(tmp_path, 3, env, placements=hosts)
    figures = Figures("killed node")
    figures.extra["placement"] = site.placement
    async with running_fleet(options, database_url) as fleet:
        site.assert_placed(node.pid for node in fleet.nodes.values())
        load = Load(options.url, auth, figures, deadline_s=90, retry=True)
        clients = [load.reply_client(f"kill-reply-{i}") for i in range(STREAMS)]
        clients += [load.crud_client(f"kill-crud-{i}") for i in range(CRUD_CLIENTS)]
        async with load.running(clients):
            await wait_for(lambda: load.streaming >= STREAMS, 60, f"{STREAMS} replies streaming")
            killed_at = time.monotonic()
            await fleet.kill_node(VICTIM)
            figures.recovery_s = await fleet.wait_state(VICTIM, "DOWN", 10)
            # The survivors carry the load a while: long enough for the sweep to fail the dead
            # node's replies and for their clients to see it.
            await wait_for(
                lambda: time.monotonic() - killed_at > SWEEP_S + 8, 30, "load after the kill"
            )

    on_victim = [o for o in load.outcomes if o.broken]
    elsewhere = [o for o in load.outcomes if not o.broken]
    failed_within = max((o.ended_at - killed_at for o in on_victim), default=0.0)
    after_kill = [o for o in elsewhere if o.ended_at > killed_at + 1]
    figures.extra.update(
        replies_on_killed_node=len(on_victim),
        their_failed_within_s=round(failed_within, 1),
        replies_completed_after_kill=len(after_kill),
    )
    # What the nodes stored, read from their database (the scenario's own in namespaces).
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, title FROM sessions WHERE title LIKE 'kill-crud-%'")
            )
            stored: dict[int, str] = {row.id: row.title for row in rows}
            repeated = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM (SELECT title FROM sessions WHERE title LIKE "
                        "'kill-crud-%' GROUP BY title HAVING count(*) > 1) AS twice"
                    )
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    figures.extra["sessions_created_twice"] = repeated
    with capsys.disabled():
        print(f"\n{figures.line()}")

    # HAProxy takes the node out within its checks (generous bound: a loaded machine).
    assert figures.recovery_s <= CHECKS.notice_s + 2
    # Only what was in flight on the node failed: at most one plain request per client.
    assert figures.failures <= CRUD_CLIENTS + STREAMS, figures.examples
    assert figures.gave_up == 0, figures.examples
    # Retries with the same key succeeded exactly once: every acknowledged session is stored,
    # none twice.
    assert all(stored.get(sid) == title for sid, title in load.acknowledged.items())
    assert repeated == 0
    # Its replies ended `failed`, seen by their resumed clients, within the sweep (+ polling).
    assert on_victim, "the killed node was running none of the replies"
    assert all(o.final is not None and o.final.event == "error" for o in on_victim)
    assert failed_within <= SWEEP_S + 4
    # The others completed, also after the kill, with exact text.
    assert all(o.final is not None and o.final.event == "done" for o in elsewhere)
    assert after_kill
    assert figures.unfinished == figures.duplicates == figures.gaps == figures.mismatches == 0
