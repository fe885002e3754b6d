"""Sessions' metadata, archive and pin: set, replaced, filtered by, listed in order, paged."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.persistence.repositories.sessions import _LIST
from bench.support.database import BenchDatabase
from tests.api.test_cursor_ties import _follow_links
from tests.api.test_queries import _scans

Auth = Callable[[str], dict[str, str]]


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], title: str, **fields: Any
) -> dict[str, Any]:
    created = await client.post("/api/sessions/", json={"title": title, **fields}, headers=headers)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _patch(
    client: httpx.AsyncClient, headers: dict[str, str], sid: int, **fields: Any
) -> dict[str, Any]:
    patched = await client.patch(f"/api/sessions/{sid}", json=fields, headers=headers)
    assert patched.status_code == 200, patched.text
    body: dict[str, Any] = patched.json()
    return body


async def _titles(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[str]:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return [s["title"] for s in response.json()]


async def test_metadata_is_set_on_create_replaced_by_patch_and_cleared(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    plain = await _create(client, alice, "plain")
    assert (plain["metadata"], plain["archived"], plain["pinned"]) == ({}, False, False)

    created = await _create(client, alice, "labelled", metadata={"project": "x", "lang": "pt"})
    assert created["metadata"] == {"project": "x", "lang": "pt"}
    replaced = await _patch(client, alice, created["id"], metadata={"team": "a:b"})
    assert replaced["metadata"] == {"team": "a:b"}  # replaced as a whole, not merged
    fetched = await client.get(f"/api/sessions/{created['id']}", headers=alice)
    assert fetched.json()["metadata"] == {"team": "a:b"}
    cleared = await _patch(client, alice, created["id"], metadata={})
    assert cleared["metadata"] == {}
    # Labels and flags are not activity; a rename is.
    assert cleared["updated_at"] == created["updated_at"]
    flagged = await _patch(client, alice, created["id"], pinned=True, archived=True)
    assert (flagged["pinned"], flagged["archived"]) == (True, True)
    assert flagged["updated_at"] == created["updated_at"]
    renamed = await _patch(client, alice, created["id"], title="new", pinned=False)
    assert renamed["updated_at"] > created["updated_at"]
    assert (renamed["title"], renamed["pinned"], renamed["archived"]) == ("new", False, True)


@pytest.mark.parametrize(
    ("metadata", "loc_end"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata"),
        ({"k" * 65: "v"}, "[key]"),
        ({"": "v"}, "[key]"),
        ({"a:b": "v"}, "[key]"),
        ({"k": "v" * 513}, "k"),
        ({"k": 1}, "k"),
        ({"k": None}, "k"),
        ({"k": "nul\u0000"}, "k"),
        ([], "metadata"),
    ],
)
async def test_metadata_beyond_its_limits_is_a_422_naming_it(
    client: httpx.AsyncClient, auth: Auth, metadata: Any, loc_end: str
) -> None:
    alice = auth("alice")
    refused = await client.post(
        "/api/sessions/", json={"title": "t", "metadata": metadata}, headers=alice
    )
    assert refused.status_code == 422, refused.text
    loc = refused.json()["errors"][0]["loc"]
    assert loc[:2] == ["body", "metadata"], loc
    assert loc[-1] == loc_end, loc
    sid = (await _create(client, alice, "t"))["id"]
    patched = await client.patch(f"/api/sessions/{sid}", json={"metadata": metadata}, headers=alice)
    assert patched.status_code == 422
    assert (await client.get("/api/sessions/", headers=alice)).json()[0]["metadata"] == {}


async def test_sixteen_keys_at_their_limits_are_kept(client: httpx.AsyncClient, auth: Auth) -> None:
    metadata = {f"{i:02}" + "k" * 62: "v" * 512 for i in range(16)}
    created = await _create(client, auth("alice"), "full", metadata=metadata)
    assert created["metadata"] == metadata


async def test_the_list_filters_by_every_metadata_pair(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice, bob = auth("alice"), auth("bob")
    await _create(client, alice, "both", metadata={"project": "x", "url": "https://a:8080/"})
    await _create(client, alice, "project only", metadata={"project": "x"})
    await _create(client, alice, "other", metadata={"project": "y", "url": "https://a:8080/"})
    await _create(client, bob, "bob's", metadata={"project": "x"})

    base = "/api/sessions/?metadata="
    assert await _titles(client, base + "project:x", alice) == ["project only", "both"]
    # The value is everything after the first `:`.
    both = f"{base}project:x&metadata=url:https://a:8080/"
    assert await _titles(client, both, alice) == ["both"]
    assert await _titles(client, base + "project:", alice) == []
    # One key, two values: nothing can match both.
    assert await _titles(client, f"{base}project:x&metadata=project:y", alice) == []
    assert await _titles(client, base + "project:x", bob) == ["bob's"]


@pytest.mark.parametrize("pair", ["project", ":x", "k" * 65 + ":v", "k:" + "v" * 513])
async def test_a_filter_that_is_not_key_colon_value_is_a_clear_422(
    client: httpx.AsyncClient, auth: Auth, pair: str
) -> None:
    refused = await client.get(f"/api/sessions/?metadata={pair}", headers=auth("alice"))
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["loc"] == ["query", "metadata"]
    assert "key:value" in error["msg"]


async def test_archived_sessions_are_listed_only_when_asked_for(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    kept = await _create(client, alice, "kept", metadata={"p": "1"})
    gone = await _create(client, alice, "archived", metadata={"p": "1"})
    await _patch(client, alice, gone["id"], archived=True)

    assert await _titles(client, "/api/sessions/", alice) == ["kept"]
    assert await _titles(client, "/api/sessions/?archived=false", alice) == ["kept"]
    assert await _titles(client, "/api/sessions/?archived=true", alice) == ["archived"]
    assert await _titles(client, "/api/sessions/?archived=true&metadata=p:1", alice) == ["archived"]
    # Still reachable by id, and brought back by PATCH.
    assert (await client.get(f"/api/sessions/{gone['id']}", headers=alice)).status_code == 200
    await _patch(client, alice, gone["id"], archived=False)
    assert await _titles(client, "/api/sessions/", alice) == ["archived", "kept"]
    assert kept["archived"] is False


async def _same_time(engine: AsyncEngine, ids: list[int]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE sessions SET updated_at = '2026-01-01T00:00:00Z' WHERE id = ANY(:ids)"),
            {"ids": ids},
        )


async def test_pinned_first_then_recent_paged_one_by_one_through_ties(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    """Pinned and unpinned sessions, some sharing `updated_at` exactly: pages of one row, by the
    `Link` header, list each once, in (pinned, updated_at, id) descending order."""
    alice = auth("alice")
    made = [await _create(client, alice, f"s{i}", metadata={"m": "1"}) for i in range(8)]
    ids = [s["id"] for s in made]
    await _same_time(engine, ids[2:6])  # four ties, two of them pinned
    for sid in (ids[1], ids[3], ids[4], ids[7]):
        await _patch(client, alice, sid, pinned=True)

    full = (await client.get("/api/sessions/?limit=100", headers=alice)).json()
    keys = [(s["pinned"], s["updated_at"], s["id"]) for s in full]
    assert keys == sorted(keys, reverse=True)
    assert [s["pinned"] for s in full] == [True] * 4 + [False] * 4

    for url in ("/api/sessions/?limit=1", "/api/sessions/?limit=1&metadata=m:1"):
        paged = await _follow_links(client, url, alice)
        assert [s["id"] for s in paged] == [s["id"] for s in full], url
    first = await client.get("/api/sessions/?limit=1&metadata=m:1", headers=alice)
    assert "metadata=m%3A1" in first.links["next"]["url"]  # the filter travels with the cursor


async def test_pinning_while_paging_neither_repeats_nor_breaks_the_cursor(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    ids = [(await _create(client, alice, f"s{i}"))["id"] for i in range(5)]  # s4 newest
    first = await client.get("/api/sessions/?limit=2", headers=alice)
    assert [s["id"] for s in first.json()] == [ids[4], ids[3]]
    # One already seen and one not yet seen are pinned: both move before the cursor.
    await _patch(client, alice, ids[3], pinned=True)
    await _patch(client, alice, ids[1], pinned=True)
    rest = await _follow_links(client, first.links["next"]["url"], alice)
    assert [s["id"] for s in rest] == [ids[2], ids[0]]
    # A fresh listing shows the pinned ones first.
    again = await _follow_links(client, "/api/sessions/?limit=2", alice)
    assert [s["id"] for s in again] == [ids[3], ids[1], ids[4], ids[2], ids[0]]


async def test_old_cursors_without_a_pin_mark_still_work(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    ids = [(await _create(client, alice, f"s{i}"))["id"] for i in range(3)]
    await _patch(client, alice, ids[0], pinned=True)
    page = await client.get("/api/sessions/?limit=2", headers=alice)
    cursor = page.links["next"]["url"].split("after=")[1].split("&")[0]
    assert not cursor.startswith("p")  # the page ended on an unpinned session
    pinned_page = await client.get("/api/sessions/?limit=1", headers=alice)
    assert pinned_page.links["next"]["url"].split("after=")[1].startswith("p")
    rest = await client.get(f"/api/sessions/?after={cursor}", headers=alice)
    assert [s["id"] for s in rest.json()] == [ids[1]]


SESSIONS_PER_USER = 250
USERS = 40
#: The caller's own sessions: enough that reading them all to filter costs more than the index.
CALLERS_SESSIONS = 5_000


async def test_the_metadata_filter_and_the_order_are_served_by_indexes(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine, migrated_url: str
) -> None:
    """15,000 sessions, 5,000 of them the caller's: a rare label is found through the GIN
    index, and the list's order comes from its B-tree, read in order (no sort, no sequential
    scan). (With few sessions, reading the caller's through the B-tree is the better plan.)"""
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO users (auth0_id) SELECT 'u' || g FROM generate_series(1, :n) AS g"),
            {"n": USERS},
        )
        await conn.execute(
            text(
                """
                INSERT INTO sessions (user_id, title, metadata, pinned, updated_at)
                SELECT u.id, 's' || g,
                       jsonb_build_object('project', 'p' || (g % 10),
                                          'ticket', 'T-' || u.id || '-' || g),
                       g % 17 = 0, now() - g * interval '1 second'
                FROM users AS u, generate_series(1, :n) AS g
                WHERE g <= :per_user OR u.auth0_id = 'u1'
                """
            ),
            {"n": CALLERS_SESSIONS, "per_user": SESSIONS_PER_USER},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE sessions"))
        user_id = await conn.scalar(text("SELECT id FROM users WHERE auth0_id = 'u1'"))

    raw = await BenchDatabase(url=migrated_url, embedded=False).connect()
    try:
        base = {"user_id": user_id, "archived": False, "skip": 0, "limit": 50}
        filtered = {**base, "metadata": json.dumps({"ticket": f"T-{user_id}-7"})}
        statement = _LIST[False, True]
        plan = await raw.fetchval(
            f"EXPLAIN (FORMAT JSON) {statement.sql}", *statement.args(filtered)
        )
        found = await raw.fetch(statement.sql, *statement.args(filtered))
        ordered = _LIST[False, False]
        order_plan = await raw.fetchval(f"EXPLAIN (FORMAT JSON) {ordered.sql}", *ordered.args(base))
    finally:
        await raw.close()
    assert [row["title"] for row in found] == ["s7"]
    assert '"Index Name": "ix_sessions_metadata"' in plan, plan
    assert not [scan for scan in _scans(json.loads(plan)) if scan[0] == "Seq Scan"], plan
    order_scans = _scans(json.loads(order_plan))
    index = "ix_sessions_user_id_archived_pinned_updated_at_id"
    assert order_scans == [("Index Scan", "sessions", index)], order_plan
    assert '"Node Type": "Sort"' not in order_plan, order_plan
