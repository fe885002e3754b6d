"""Replies on branches, against a real uvicorn: edits, new roots, regeneration, continuations,
and the simulated model's tool loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.language_model import PromptMessage
from app.llm.simulated import simulated_text
from bench.support.roundtrips import RoundTrips
from tests.replies.conftest import Serve
from tests.support.replies import get_message, new_session, wait_until_ended
from tests.support.sse import Event, collect, events, text_of

Auth = Callable[[str], dict[str, str]]
Headers = dict[str, str]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"input": {"type": "string"}}},
    },
}


async def reply(http: httpx.AsyncClient, sid: int, headers: Headers, **body: Any) -> list[Event]:
    async with http.stream(
        "POST", f"/api/sessions/{sid}/replies", json=body, headers=headers
    ) as response:
        return await collect(response)


async def regenerate(
    http: httpx.AsyncClient, message_id: int, headers: Headers, **body: Any
) -> list[Event]:
    async with http.stream(
        "POST", f"/api/messages/{message_id}/regenerate", json=body or None, headers=headers
    ) as response:
        return await collect(response)


async def thread(http: httpx.AsyncClient, sid: int, headers: Headers) -> Any:
    response = await http.get(f"/api/sessions/{sid}/thread", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def answer(*prompt: tuple[str, str]) -> str:
    """What the simulated model (20 tokens in these tests) answers to this conversation."""
    return simulated_text([PromptMessage(role, content) for role, content in prompt], 20)  # type: ignore[arg-type]


async def test_an_edit_starts_a_branch_and_the_model_sees_only_it(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    first = await reply(http, sid, alice, content="q1")
    a1 = first[-1].data
    second = await reply(http, sid, alice, content="q2")
    u2, a2 = second[0].data, second[-1].data
    assert (u2["parent_id"], a2["parent_id"]) == (a1["id"], u2["id"])

    edited = await reply(http, sid, alice, content="q2, edited", parent_id=u2["parent_id"])
    user, began, *_, done = edited
    assert (user.event, user.data["parent_id"]) == ("user", a1["id"])
    assert began.data["parent_id"] == user.data["id"]
    # The prompt is the branch: q1, its answer, the edit; never q2 or its answer.
    assert done.data["content"] == answer(
        ("user", "q1"), ("assistant", a1["content"]), ("user", "q2, edited")
    )
    assert (done.data["finish_reason"], done.data["model"]) == ("stop", "simulated")

    shown = await thread(http, sid, alice)
    assert [m["content"] for m in shown[:3]] == ["q1", a1["content"], "q2, edited"]
    assert shown[2]["sibling_ids"] == [u2["id"], user.data["id"]]
    assert shown[3]["id"] == done.data["id"]
    session = (await http.get(f"/api/sessions/{sid}", headers=alice)).json()
    assert (session["current_message_id"], session["message_count"]) == (done.data["id"], 6)
    # The old branch is still there, one PATCH away.
    await http.patch(f"/api/sessions/{sid}", json={"current_message_id": a2["id"]}, headers=alice)
    assert [m["id"] for m in await thread(http, sid, alice)][2:] == [u2["id"], a2["id"]]


async def test_editing_the_first_message_starts_a_new_root(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    first = await reply(http, sid, alice, content="hello")
    root = await reply(http, sid, alice, content="hello again", parent_id=None)
    assert root[0].data["parent_id"] is None
    assert root[-1].data["content"] == answer(("user", "hello again"))
    shown = await thread(http, sid, alice)
    assert [m["content"] for m in shown] == ["hello again", root[-1].data["content"]]
    assert shown[0]["sibling_ids"] == [first[0].data["id"], root[0].data["id"]]


async def test_a_regeneration_streams_a_sibling_that_becomes_current(
    serve: Serve, auth: Auth
) -> None:
    server = await serve(simulated_delay_ms=15, simulated_tokens=30)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        original = (await reply(http, sid, alice, content="tell me"))[-1].data
        # Disconnect mid-stream, then resume: the same events as a reply, without `user`.
        first: list[Event] = []
        async with http.stream(
            "POST", f"/api/messages/{original['id']}/regenerate", headers=alice
        ) as response:
            async for received in events(response):
                first.append(received)
                if sum(e.event == "delta" for e in first) == 2:
                    break
        assert first[0].event == "message"
        regenerated = first[0].data
        assert (regenerated["parent_id"], regenerated["status"]) == (
            original["parent_id"],
            "streaming",
        )
        async with http.stream(
            "GET",
            f"/api/messages/{regenerated['id']}/stream",
            headers={**alice, "Last-Event-ID": first[-1].id},
        ) as response:
            rest = await collect(response)
        done = rest[-1]
        assert (done.event, done.data["status"]) == ("done", "completed")
        assert text_of(first + rest) == done.data["content"]
        # Same prompt, same text: the simulated model is deterministic.
        assert done.data["content"] == original["content"]
        shown = await thread(http, sid, alice)
        assert shown[-1]["id"] == regenerated["id"]
        assert shown[-1]["sibling_ids"] == [original["id"], regenerated["id"]]
        session = (await http.get(f"/api/sessions/{sid}", headers=alice)).json()
        assert (session["current_message_id"], session["message_count"]) == (regenerated["id"], 3)


async def test_a_regeneration_can_be_cancelled_and_waits_its_turn(serve: Serve, auth: Auth) -> None:
    server = await serve(simulated_delay_ms=20, simulated_tokens=500)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with http.stream(
            "POST", f"/api/sessions/{sid}/replies", json={"content": "one"}, headers=alice
        ) as response:
            stream = events(response)
            user = (await anext(stream)).data
            running = (await anext(stream)).data
            busy = await http.post(f"/api/messages/{running['id']}/regenerate", headers=alice)
            assert busy.status_code == 409
            assert busy.json()["running_message_id"] == running["id"]
            not_a_reply = await http.post(f"/api/messages/{user['id']}/regenerate", headers=alice)
            assert not_a_reply.status_code == 409
            assert "only an assistant's reply" in not_a_reply.json()["detail"]
            await http.post(f"/api/messages/{running['id']}/cancel", headers=alice)
        async with http.stream(
            "POST", f"/api/messages/{running['id']}/regenerate", headers=alice
        ) as response:
            began = (await collect(response, limit=1))[0].data
        cancelled = await http.post(f"/api/messages/{began['id']}/cancel", headers=alice)
        assert (cancelled.json()["status"], cancelled.json()["finish_reason"]) == (
            "cancelled",
            "cancelled",
        )
        count = (await http.get(f"/api/sessions/{sid}", headers=alice)).json()["message_count"]
        assert count == 3


async def test_a_continuation_answers_the_branch_without_a_user_message(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    posted = await http.post(
        f"/api/messages/?session_id={sid}",
        json={"role": "user", "content": "posted, not asked"},
        headers=alice,
    )
    continued = await reply(http, sid, alice)
    assert continued[0].event == "message"
    assert "user" not in {e.event for e in continued}
    done = continued[-1].data
    assert done["parent_id"] == posted.json()["id"]
    assert done["content"] == answer(("user", "posted, not asked"))
    empty = await new_session(http, alice)
    nothing = await http.post(f"/api/sessions/{empty}/replies", json={}, headers=alice)
    assert nothing.status_code == 422
    assert nothing.json()["errors"][0]["loc"] == ["body", "content"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "x", "parent_id": 987654321}, "parent_id"),
        ({"parent_id": None}, "content"),
        ({"content": "x", "parent_id": 0}, "parent_id"),
        ({"content": "x", "tool_choice": "auto"}, "tool_choice"),
        ({"content": "x", "tools": [WEATHER, WEATHER]}, "tools"),
        ({"content": "x", "tools": [{"type": "function", "function": {"name": "a b"}}]}, "name"),
        (
            {
                "content": "x",
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "other"}},
            },
            "tool_choice",
        ),
    ],
)
async def test_bad_reply_branches_and_tools_are_422_and_write_nothing(
    http: httpx.AsyncClient, auth: Auth, body: dict[str, Any], field: str
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    await http.post(
        f"/api/messages/?session_id={sid}", json={"role": "user", "content": "a"}, headers=alice
    )
    response = await http.post(f"/api/sessions/{sid}/replies", json=body, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][-1] == field
    assert (await http.get(f"/api/sessions/{sid}", headers=alice)).json()["message_count"] == 1


async def test_the_simulated_model_runs_a_tool_loop(http: httpx.AsyncClient, auth: Auth) -> None:
    """What `make dev` and curl can do: the model calls the tool, the client posts the result
    and asks for the continuation, the model answers with it."""
    alice = auth("alice")
    sid = await new_session(http, alice)
    asked = await reply(http, sid, alice, content="Lisbon", tools=[WEATHER])
    assert [e.event for e in asked if e.event != "delta"] == [
        "user",
        "message",
        "tool_call",
        "done",
    ]
    call, done = asked[-2], asked[-1]
    assert call.id == "tool:0"
    assert (call.data["type"], call.data["function"]["name"]) == ("function", "get_weather")
    assert json.loads(call.data["function"]["arguments"]) == {"input": "Lisbon"}
    assert (done.data["finish_reason"], done.data["tool_calls"], done.data["content"]) == (
        "tool_calls",
        [call.data],
        "",
    )
    result = await http.post(
        f"/api/messages/?session_id={sid}",
        json={"role": "tool", "content": "18 °C", "tool_call_id": call.data["id"]},
        headers=alice,
    )
    assert result.status_code == 201, result.text
    continued = await reply(http, sid, alice, tools=[WEATHER])
    final = continued[-1].data
    assert "user" not in {e.event for e in continued}
    assert (final["content"], final["finish_reason"]) == (
        'The tool get_weather returned: "18 °C"',
        "stop",
    )
    assert final["parent_id"] == result.json()["id"]
    # A replay resumes after the call: only what is left.
    url = f"/api/messages/{done.data['id']}/stream"
    async with http.stream("GET", url, headers={**alice, "Last-Event-ID": "tool:0"}) as response:
        assert [e.event for e in await collect(response)] == ["done"]
    async with http.stream("GET", url, headers=alice) as response:
        replayed = await collect(response)
    assert [e.event for e in replayed] == ["message", "tool_call", "done"]
    assert replayed[1:] == asked[-2:]


async def test_a_warm_reply_start_is_one_statement(serve: Serve, auth: Auth) -> None:
    """Warm, a reply's start is one statement: no BEGIN, no COMMIT (statements of this
    process's progress writer and sweep, which may run meanwhile, are told apart)."""
    server = await serve(simulated_delay_ms=1000, reply_flush_ms=10_000)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        for prompt in ("warm-up", "counted"):
            with RoundTrips().installed() as trips:
                async with http.stream(
                    "POST", f"/api/sessions/{sid}/replies", json={"content": prompt}, headers=alice
                ) as response:
                    started = await collect(response, limit=2)
            reply_id = started[1].data["id"]
            await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)
            await wait_until_ended(http, reply_id, alice)
        background = ("INSERT INTO reply_chunks", "advisory")
        seen = [s for s in trips.statements if not any(b in s for b in background)]
        assert len(seen) == 1, seen
        assert trips.counts["simple"] == 0, trips.counts  # no BEGIN, COMMIT or ROLLBACK
        assert "FOR NO KEY UPDATE" in seen[0]
        assert "INSERT INTO messages" in seen[0]
        assert (await get_message(http, reply_id, alice))["status"] == "cancelled"


async def test_a_reply_start_that_waited_for_the_session_sees_what_was_appended(
    http: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    """A start takes its snapshot, then waits for the session's lock while an append commits:
    the locked row names the new message, which the snapshot cannot see. The start runs again
    holding the lock: the reply goes under the new message and the model sees it."""
    alice = auth("alice")
    sid = await new_session(http, alice)
    first = await http.post(
        f"/api/messages/?session_id={sid}", json={"role": "user", "content": "m"}, headers=alice
    )
    async with engine.connect() as conn:
        transaction = await conn.begin()
        sneaked = await conn.scalar(
            text(
                "WITH m AS (INSERT INTO messages (session_id, user_id, parent_id, role, content) "
                "SELECT id, user_id, current_message_id, 'user', 'sneaked in' FROM sessions "
                "WHERE id = :s "
                "RETURNING id, created_at) "
                "UPDATE sessions SET current_message_id = m.id, updated_at = m.created_at, "
                "message_count = message_count + 1 FROM m WHERE sessions.id = :s RETURNING m.id"
            ),
            {"s": sid},
        )
        started = asyncio.create_task(reply(http, sid, alice, content="q"))
        async with engine.connect() as watcher:
            for _ in range(500):  # bounded: until the start waits for our lock
                waiting = await watcher.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%FOR NO KEY UPDATE%'"
                    )
                )
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting, "the reply's start never waited for the session"
        await transaction.commit()
    received = await asyncio.wait_for(started, 20)
    user, done = received[0].data, received[-1].data
    assert user["parent_id"] == sneaked != first.json()["id"]
    assert done["content"] == answer(("user", "m"), ("user", "sneaked in"), ("user", "q"))
