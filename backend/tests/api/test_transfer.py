"""Export and import over HTTP: one session as a document, all of them as NDJSON in batches,
and documents (ours, or OpenAI-style lists) back in as new sessions, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.services.transfer import EXPORT_BATCH
from tests.api.test_queries import count_statements
from tests.support.replies import new_session, reply_stream
from tests.support.sse import events

Auth = Callable[[str], dict[str, str]]
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


async def _post(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]
) -> dict[str, Any]:
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code in {200, 201}, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _reply(client: httpx.AsyncClient, sid: int, content: str, headers: dict[str, str]) -> Any:
    async with reply_stream(client, sid, content, headers) as response:
        async for event in events(response):
            if event.event == "done":
                return event.data
    raise AssertionError("the reply's stream ended without `done`")


async def _rich_session(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """Two branches, a tool call and its result, feedback, metadata, both flags and an expiry
    (a temporary chat)."""
    sid = await new_session(client, headers)
    first = await _reply(client, sid, "plan a day in Lisbon", headers)
    rated = await client.put(
        f"/api/messages/{first['id']}/feedback",
        json={"rating": "down", "comment": "too long"},
        headers=headers,
    )
    assert rated.status_code == 200
    edit = await client.post(
        f"/api/sessions/{sid}/replies",
        json={"content": "plan a day in Porto", "parent_id": None},
        headers=headers,
    )
    assert edit.status_code == 200
    url = f"/api/messages/?session_id={sid}"
    await _post(client, url, {"role": "assistant", "tool_calls": [CALL]}, headers)
    result = {"role": "tool", "tool_call_id": "call_1", "content": "18 °C"}
    await _post(client, url, result, headers)
    await client.patch(
        f"/api/sessions/{sid}",
        json={
            "metadata": {"trip": "pt"},
            "pinned": True,
            "archived": True,
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        headers=headers,
    )
    return sid


def _normalised(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its ids replaced by their positions: what must survive a round trip."""
    position = {m["id"]: n for n, m in enumerate(document["messages"])}
    session = dict(document["session"], id=None)
    session["current_message_id"] = position.get(session["current_message_id"])
    messages = [
        dict(m, id=position[m["id"]], parent_id=position.get(m["parent_id"]))
        for m in document["messages"]
    ]
    return {**document, "session": session, "messages": messages}


async def test_export_import_export_gives_the_same_document(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await _rich_session(client, alice)
    exported = (await client.get(f"/api/sessions/{sid}/export", headers=alice)).json()
    assert (exported["format"], exported["version"]) == ("agent-stack.session", 1)
    assert exported["session"]["metadata"] == {"trip": "pt"}
    assert len(exported["messages"]) == 6
    assert sum(m["parent_id"] is None for m in exported["messages"]) == 2  # two roots
    assert any(m["feedback"] for m in exported["messages"])
    assert any(m["tool_calls"] for m in exported["messages"])

    imported = await _post(client, "/api/sessions/import", exported, alice)
    assert imported["id"] != sid
    assert imported["message_count"] == 6
    assert (imported["pinned"], imported["archived"]) == (True, True)
    assert imported["expires_at"] == exported["session"]["expires_at"] is not None
    again = (await client.get(f"/api/sessions/{imported['id']}/export", headers=alice)).json()
    assert {m["id"] for m in again["messages"]}.isdisjoint(m["id"] for m in exported["messages"])
    assert _normalised(again) == _normalised(exported)
    thread = (await client.get(f"/api/sessions/{imported['id']}/thread", headers=alice)).json()
    assert [m["role"] for m in thread] == ["user", "assistant", "assistant", "tool"]
    # The imported messages are the caller's (`messages.user_id`): search finds them, in both.
    hits = (await client.get("/api/search?q=lisbon", headers=alice)).json()
    assert {hit["session_id"] for hit in hits} == {sid, imported["id"]}


async def test_an_openai_list_becomes_one_branch(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Lisbon?\nthanks"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 °C"},
            {"role": "assistant", "content": "18 °C and sunny"},
        ]
    }
    imported = await _post(client, "/api/sessions/import", body, alice)
    assert imported["title"] == "weather in Lisbon?"
    thread = (await client.get(f"/api/sessions/{imported['id']}/thread", headers=alice)).json()
    assert [m["content"] for m in thread] == ["be brief", "weather in Lisbon?\nthanks", "",
                                              "18 °C", "18 °C and sunny"]  # fmt: skip
    assert thread[0]["parent_id"] is None
    assert all(m["parent_id"] == p["id"] for p, m in pairwise(thread))
    assert thread[-1]["id"] == imported["current_message_id"]
    # The imported session goes on like any other.
    continued = await _reply(client, imported["id"], "and tomorrow?", alice)
    assert continued["status"] == "completed"


async def test_openai_content_parts_and_sdk_dumps_are_imported(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """What an OpenAI request or an SDK's `message.model_dump()` holds: text parts (joined by
    newlines), and the empty `refusal`, `annotations`, `audio` and `function_call` fields."""
    alice = auth("alice")
    dumped: dict[str, Any] = {
        "content": "Lisbon: 18 °C",
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
        "tool_calls": None,
    }
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "weather in Lisbon?"},
                    {"type": "text", "text": "and in Porto?"},
                ],
            },
            {"role": "assistant", **dumped},
        ]
    }
    imported = await _post(client, "/api/sessions/import", body, alice)
    assert imported["title"] == "weather in Lisbon?"
    thread = (await client.get(f"/api/sessions/{imported['id']}/thread", headers=alice)).json()
    assert [m["content"] for m in thread] == [
        "be brief",
        "weather in Lisbon?\nand in Porto?",
        "Lisbon: 18 °C",
    ]


@pytest.mark.parametrize(
    ("message", "field", "said"),
    [
        (
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "x"}}]},
            "content",
            "part 1 is of type `image_url`",
        ),
        ({"role": "user", "content": []}, "content", "no content parts"),
        ({"role": "user", "content": [{"type": "text", "text": ""}]}, "content", "with text"),
        ({"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}, "content", "part 0"),
        ({"role": "user", "content": ["a"]}, "content", "not a content part"),
        ({"role": "assistant", "content": None, "refusal": "no"}, "refusal", "refusal"),
        ({"role": "assistant", "content": "a", "annotations": [{}]}, "annotations", "annot"),
        ({"role": "assistant", "content": "a", "audio": {"id": "x"}}, "audio", "audio"),
        ({"role": "user", "content": "a", "name": "alice"}, "name", "remove `name`"),
    ],
)  # fmt: skip
async def test_what_cannot_be_stored_as_text_is_refused_not_dropped(
    client: httpx.AsyncClient, auth: Auth, message: dict[str, Any], field: str, said: str
) -> None:
    alice = auth("alice")
    body = {"messages": [{"role": "user", "content": "first"}, message]}
    refused = await client.post("/api/sessions/import", json=body, headers=alice)
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    named = [e for e in errors if e["loc"] == ["body", "messages", 1, field]]
    assert named, errors
    assert said in named[0]["msg"], errors
    assert (await client.get("/api/users/me", headers=alice)).json()["session_count"] == 0


def _exported(*messages: dict[str, Any], current: int | None = None) -> dict[str, Any]:
    return {
        "format": "agent-stack.session",
        "version": 1,
        "session": {"title": "t", "current_message_id": current},
        "messages": list(messages),
    }


async def test_an_expiry_already_passed_is_dropped_not_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """A temporary chat exported, then imported after its end, comes back as a kept session;
    one still ahead stays temporary."""
    alice = auth("alice")
    message = {"id": 1, "role": "user", "content": "a"}
    for expires_at, kept in [
        ("2020-01-01T00:00:00Z", None),
        ("2020-01-01T00:00:00", None),  # no zone: UTC, as the other times of a document
        ("2999-01-01T00:00:00Z", "2999-01-01T00:00:00Z"),
    ]:
        document = _exported(message, current=1)
        document["session"]["expires_at"] = expires_at
        imported = await _post(client, "/api/sessions/import", document, alice)
        assert imported["expires_at"] == kept, expires_at
        again = await client.get(f"/api/sessions/{imported['id']}/export", headers=alice)
        assert again.status_code == 200
        assert again.json()["session"]["expires_at"] == kept
    for field, value in [
        ("expires_at", 1893456000),  # a number is not a date-time
        ("expires_at", "9999-12-31T23:59:00-23:00"),  # after year 9999 in UTC
        ("created_at", "0001-01-01T00:00:00+23:00"),  # before year 1 in UTC
    ]:
        document = _exported(message)
        document["session"][field] = value
        refused = await client.post("/api/sessions/import", json=document, headers=alice)
        assert refused.status_code == 422, (field, value, refused.text)
        assert refused.json()["errors"][0]["loc"] == ["body", "session", field]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            _exported({"id": 1, "role": "user", "content": "a"},
                      {"id": 2, "parent_id": 9, "role": "user", "content": "b"}),
            ["body", "messages", 1, "parent_id"],
        ),
        (
            _exported({"id": 1, "parent_id": 3, "role": "user", "content": "a"},
                      {"id": 2, "parent_id": 1, "role": "user", "content": "b"},
                      {"id": 3, "parent_id": 2, "role": "user", "content": "c"}),
            ["body", "messages", 0, "parent_id"],
        ),
        (
            _exported({"id": 1, "role": "user", "content": "a"},
                      {"id": 1, "role": "user", "content": "b"}),
            ["body", "messages", 1, "id"],
        ),
        (
            _exported({"id": 1, "role": "user", "content": "a"}, current=5),
            ["body", "session", "current_message_id"],
        ),
        (
            # The call is on another branch.
            _exported({"id": 1, "role": "user", "content": "a"},
                      {"id": 2, "parent_id": 1, "role": "assistant", "tool_calls": [CALL]},
                      {"id": 3, "parent_id": 1, "role": "tool", "tool_call_id": "call_1",
                       "content": "r"}),
            ["body", "messages", 2, "tool_call_id"],
        ),
        (
            {"messages": [{"role": "user", "content": "a"},
                          {"role": "tool", "tool_call_id": "nope", "content": "r"}]},
            ["body", "messages", 1, "tool_call_id"],
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user"}]},
            ["body", "messages", 1, "content"],
        ),
        (
            {"messages": [{"role": "user", "content": "a"},
                          {"role": "assistant", "content": "", "status": "streaming"}]},
            ["body", "messages", 1, "status"],
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"id": 4, "role": "user",
                                                             "content": "b"}]},
            ["body", "messages", 1, "id"],
        ),
    ],
)  # fmt: skip
async def test_a_bad_item_is_a_422_naming_its_position_and_nothing_is_created(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, Any], where: list[Any]
) -> None:
    alice = auth("alice")
    refused = await client.post("/api/sessions/import", json=body, headers=alice)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["loc"] == where, refused.json()
    assert (await client.get("/api/users/me", headers=alice)).json()["session_count"] == 0


async def test_the_limits_answer_413_and_the_quota_409(
    app: Any, client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    limits = app.state.services.limits
    too_many = {"messages": [{"role": "user", "content": "x"}] * (limits.max_import_messages + 1)}
    refused = await client.post("/api/sessions/import", json=too_many, headers=alice)
    assert refused.status_code == 413, refused.text
    assert f"at most {limits.max_import_messages}" in refused.json()["detail"]

    # The body limit of imports is their own (IMPORT_MAX_BYTES), above MAX_BODY_BYTES.
    settings = app.state.services.settings
    big = {"messages": [{"role": "user", "content": "x" * 90_000}] * 30}
    assert settings.max_body_bytes < len(json.dumps(big)) < settings.import_max_bytes
    assert (await client.post("/api/sessions/import", json=big, headers=alice)).status_code == 201
    huge = b'{"messages": [' + b" " * settings.import_max_bytes + b"]}"
    headers = {**alice, "Content-Type": "application/json"}
    oversized = await client.post("/api/sessions/import", content=huge, headers=headers)
    assert oversized.status_code == 413

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET session_count = :n WHERE auth0_id = 'alice'"),
            {"n": limits.max_sessions_per_user},
        )
    full = await client.post(
        "/api/sessions/import", json={"messages": [{"role": "user", "content": "x"}]}, headers=alice
    )
    assert full.status_code == 409, full.text


async def test_import_takes_an_idempotency_key(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = {**auth("alice"), "Idempotency-Key": "import-1"}
    body = {"messages": [{"role": "user", "content": "once"}]}
    first = await client.post("/api/sessions/import", json=body, headers=alice)
    second = await client.post("/api/sessions/import", json=body, headers=alice)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert len((await client.get("/api/sessions/", headers=alice)).json()) == 1


SESSIONS = 1_000


async def test_exporting_every_session_streams_them_all_in_bounded_batches(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice, bob = auth("alice"), auth("bob")
    await new_session(client, bob)  # never in alice's export
    await client.get("/api/users/me", headers=alice)  # provisioned, and warm
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO sessions (user_id, title, message_count, metadata)
                SELECT u.id, 's' || g, 1, jsonb_build_object('n', g::text)
                FROM users AS u, generate_series(1, :n) AS g WHERE u.auth0_id = 'alice'
                """
            ),
            {"n": SESSIONS},
        )
        await conn.execute(
            text(
                "INSERT INTO messages (session_id, user_id, role, content) "
                "SELECT id, user_id, 'user', 'hi ' || title FROM sessions WHERE title LIKE 's%'"
            )
        )
    with count_statements() as statements:
        async with client.stream("GET", "/api/users/me/export", headers=alice) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-ndjson"
            lines = [json.loads(line) async for line in response.aiter_lines() if line]
    assert len(lines) == SESSIONS
    assert [d["session"]["title"] for d in lines] == [f"s{n}" for n in range(1, SESSIONS + 1)]
    assert all(d["messages"][0]["content"] == "hi " + d["session"]["title"] for d in lines)
    # Batches of EXPORT_BATCH sessions, one statement each (and one more finds the end).
    assert len(statements) == SESSIONS // EXPORT_BATCH + 1, len(statements)
    assert all("LIMIT" in s for s in statements)


async def test_export_of_another_users_session_is_a_404(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    sid = await new_session(client, auth("alice"))
    theirs = await client.get(f"/api/sessions/{sid}/export", headers=auth("bob"))
    missing = await client.get("/api/sessions/9000000000/export", headers=auth("bob"))
    assert theirs.status_code == missing.status_code == 404
    empty = await client.get("/api/users/me/export", headers=auth("bob"))
    assert empty.text == ""


async def test_other_verbs_on_the_import_path_are_405_not_a_bad_session_id(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    for verb in ("GET", "PATCH", "DELETE", "PUT"):
        response = await client.request(verb, "/api/sessions/import", headers=auth("alice"))
        assert response.status_code == 405, (verb, response.text)
        assert response.headers["allow"] == "POST"
