"""Full-text search through HTTP: syntax, ranking, snippets, cursors, isolation, the plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.search import TAG_OPEN_STANDIN, Markers
from app.persistence.repositories.search import _SEARCH, _options

Auth = Callable[[str], dict[str, str]]


async def _session(client: httpx.AsyncClient, headers: dict[str, str], title: str) -> int:
    response = await client.post("/api/sessions/", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    session_id: int = response.json()["id"]
    return session_id


async def _say(client: httpx.AsyncClient, headers: dict[str, str], sid: int, text: str) -> int:
    response = await client.post(
        f"/api/messages/?session_id={sid}", json={"role": "user", "content": text}, headers=headers
    )
    assert response.status_code == 201, response.text
    message_id: int = response.json()["id"]
    return message_id


async def _search(
    client: httpx.AsyncClient, headers: dict[str, str], q: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/api/search", params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()
    return hits


def _matched(hit: dict[str, Any]) -> list[str]:
    return [part["text"] for part in hit["snippet"] if part["match"]]


async def test_web_search_syntax_phrases_or_and_negation(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await _session(client, alice, "Holidays")
    day_trip = await _say(client, alice, sid, "A day trip from Lisbon to Sintra")
    trip_day = await _say(client, alice, sid, "The trip took a whole day in Porto")
    await _say(client, alice, sid, "Nothing to see here")

    both = {h["message_id"] for h in await _search(client, alice, "trip day")}
    assert both == {day_trip, trip_day}
    phrase = await _search(client, alice, '"day trip"')
    assert [h["message_id"] for h in phrase] == [day_trip]
    either = {h["message_id"] for h in await _search(client, alice, "sintra or porto")}
    assert either == {day_trip, trip_day}
    without = await _search(client, alice, "trip -porto")
    assert [h["message_id"] for h in without] == [day_trip]
    hit = without[0]
    assert hit["kind"] == "message"
    assert (hit["session_id"], hit["session_title"]) == (sid, "Holidays")
    assert hit["role"] == "user"
    assert _matched(hit) == ["trip"]
    assert "".join(part["text"] for part in hit["snippet"]) == "A day trip from Lisbon to Sintra"


async def test_titles_match_too_and_rank_above_messages(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    titled = await _session(client, alice, "Lisbon in spring")
    other = await _session(client, alice, "Errands")
    message = await _say(client, alice, other, "buy a guide to lisbon")
    hits = await _search(client, alice, "lisbon")
    assert [(h["kind"], h["session_id"], h["message_id"]) for h in hits] == [
        ("title", titled, None),
        ("message", other, message),
    ]
    assert hits[0]["role"] is None
    assert hits[0]["snippet"] == [
        {"text": "Lisbon", "match": True},
        {"text": " in spring", "match": False},
    ]


async def test_ranked_by_relevance_then_recency(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await _session(client, alice, "notes")
    once_old = await _say(client, alice, sid, "coffee at noon")
    thrice = await _say(client, alice, sid, "coffee coffee and more coffee")
    once_new = await _say(client, alice, sid, "coffee at night")
    hits = await _search(client, alice, "coffee")
    assert [h["message_id"] for h in hits] == [thrice, once_new, once_old]


async def test_html_and_markers_in_text_cannot_forge_a_match(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await _session(client, alice, "markup")
    forged = Markers.fresh()
    text_ = f"<b>secret</b> {forged.start}fake{forged.stop} and the real word"
    await _say(client, alice, sid, text_)
    (hit,) = await _search(client, alice, "real")
    assert _matched(hit) == ["real"]
    whole = "".join(part["text"] for part in hit["snippet"])
    assert "<b>secret</b>" in whole
    assert f"{forged.start}fake{forged.stop}" in whole


async def test_pages_follow_the_link_without_repeats_or_gaps(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await _session(client, alice, "many")
    ids = [await _say(client, alice, sid, f"pebble number {n}") for n in range(7)]
    seen: list[int] = []
    url: str | None = "/api/search?q=pebble&limit=3"
    pages = 0
    while url is not None:
        response = await client.get(url, headers=alice)
        assert response.status_code == 200
        seen += [h["message_id"] for h in response.json()]
        link = response.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else None
        pages += 1
    assert pages == 3
    assert seen == list(reversed(ids))  # equal relevance: newest first


@pytest.mark.parametrize("q", ["", "   ", "\t"])
async def test_blank_query_is_422(client: httpx.AsyncClient, auth: Auth, q: str) -> None:
    response = await client.get("/api/search", params={"q": q}, headers=auth("alice"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "q"]


async def test_missing_query_and_bad_cursor_are_422(client: httpx.AsyncClient, auth: Auth) -> None:
    assert (await client.get("/api/search", headers=auth("alice"))).status_code == 422
    response = await client.get("/api/search?q=a&after=1_2", headers=auth("alice"))
    assert response.status_code == 422


@pytest.mark.parametrize("q", ["-", "!", "&|", '""', "-cat", "- - -", ":*", "-cat -dog"])
async def test_queries_that_reduce_to_nothing_find_nothing(
    client: httpx.AsyncClient, auth: Auth, q: str
) -> None:
    alice = auth("alice")
    sid = await _session(client, alice, "cat or dog")
    await _say(client, alice, sid, "a dog, or a bird - nothing else")
    assert await _search(client, alice, q) == []


ADVERSARIAL = [
    "secret",
    "secret or anything",
    "' OR 1=1 --",
    "secret') OR true --",
    "*",
    "secret:*",
    "!nothing",
    "secret | mine",
    '"secret plan"',
    "-mine",
    "secret -mine",
    "%",
    "_",
    "\\",
    "secret & !x",
    "bob",
    "user_id",
]


@pytest.mark.parametrize("q", ADVERSARIAL)
async def test_another_users_messages_never_appear(
    client: httpx.AsyncClient, auth: Auth, q: str
) -> None:
    bob_sid = await _session(client, auth("bob"), "bob secret plan")
    await _say(client, auth("bob"), bob_sid, "the secret plan of bob: user_id anything % _ \\")
    alice = auth("alice")
    mine = await _session(client, alice, "mine")
    await _say(client, alice, mine, "mine is a secret too")
    hits = await _search(client, alice, q)
    assert all(h["session_id"] == mine for h in hits), hits
    assert "bob" not in json.dumps(hits)


async def test_expired_sessions_are_not_found(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    sid = await _session(client, alice, "ephemeral walrus")
    await _say(client, alice, sid, "the walrus speaks")
    assert len(await _search(client, alice, "walrus")) == 2
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = :s"),
            {"s": sid},
        )
    assert await _search(client, alice, "walrus") == []


async def test_archived_and_labelled_sessions_are_found_like_any_other(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """Archiving only hides a session from the list: search covers everything the caller has."""
    alice = auth("alice")
    sid = await _session(client, alice, "shelved narwhal")
    said = await _say(client, alice, sid, "the narwhal sleeps")
    patched = await client.patch(
        f"/api/sessions/{sid}",
        json={"archived": True, "pinned": True, "metadata": {"k": "v"}},
        headers=alice,
    )
    assert patched.status_code == 200
    assert (await client.get("/api/sessions/", headers=alice)).json() == []
    hits = await _search(client, alice, "narwhal")
    assert [(h["kind"], h["message_id"]) for h in hits] == [("title", None), ("message", said)]


async def test_the_plan_reads_the_users_search_index(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    """With enough rows for the planner to weigh its options (a user with thousands of
    messages among other users'), the statement reads the GIN index on (user_id,
    search_vector): this user's entries for the words, not every message of the user, nor of
    everyone."""
    alice = auth("alice")
    sid = await _session(client, alice, "seed")
    await _say(client, alice, sid, "the needle")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "WITH u AS (INSERT INTO users (auth0_id) SELECT 'other' || g "
                "FROM generate_series(1, 4) AS g RETURNING id), "
                "s AS (INSERT INTO sessions (user_id, title) SELECT id, 'other' FROM u "
                "UNION ALL SELECT user_id, 'mine' FROM sessions WHERE id = :sid "
                "RETURNING id, user_id) "
                "INSERT INTO messages (session_id, user_id, role, content) "
                "SELECT s.id, s.user_id, 'user', 'hay number ' || g || ' and needle' || g "
                "FROM s, generate_series(1, 8000) AS g"
            ),
            {"sid": sid},
        )
        await conn.execute(text("ANALYZE messages, sessions"))
        user_id = await conn.scalar(text("SELECT id FROM users WHERE auth0_id = 'alice'"))
    assert len(await _search(client, alice, "needle")) == 1
    markers = Markers.fresh()
    statement = _SEARCH[False]
    params = {
        "user_id": user_id,
        "q": "needle",
        "config": "simple",
        "limit": 20,
        "options": _options(markers, whole=False),
        "title_options": _options(markers, whole=True),
        "tag_open": TAG_OPEN_STANDIN,
    }
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        rows = await driver.fetch("EXPLAIN " + statement.sql, *statement.args(params))
    plan = "\n".join(row[0] for row in rows)
    assert "on ix_messages_user_id_search_vector" in plan, plan
    assert "Seq Scan on messages" not in plan, plan
