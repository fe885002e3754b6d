"""Tool calls and their results posted as messages, over HTTP against PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.test_branches import new_session, post, session, thread

Auth = Callable[[str], dict[str, str]]
Headers = dict[str, str]


def calls(*ids: str, name: str = "get_weather") -> list[dict[str, Any]]:
    return [
        {"id": i, "type": "function", "function": {"name": name, "arguments": '{"city": "Lisbon"}'}}
        for i in ids
    ]


async def send(client: httpx.AsyncClient, sid: int, headers: Headers, **body: Any) -> Any:
    return await client.post(f"/api/messages/?session_id={sid}", json=body, headers=headers)


async def test_an_assistant_calls_tools_and_their_results_answer_them(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    await post(client, sid, alice, "Weather in Lisbon and the time?")
    asked = await send(
        client, sid, alice, role="assistant", content=None, tool_calls=calls("c1", "c2")
    )
    assert asked.status_code == 201, asked.text
    assistant = asked.json()
    assert (assistant["content"], assistant["tool_calls"]) == ("", calls("c1", "c2"))
    assert assistant["finish_reason"] is None  # posted, not generated
    results = []
    for call_id, result in (("c2", "12:00"), ("c1", "18 °C")):
        answered = await send(client, sid, alice, role="tool", content=result, tool_call_id=call_id)
        assert answered.status_code == 201, answered.text
        results.append(answered.json())
    assert results[0]["parent_id"] == assistant["id"]
    assert results[1]["parent_id"] == results[0]["id"]
    assert [m["tool_call_id"] for m in results] == ["c2", "c1"]
    shown = await thread(client, sid, alice)
    assert [m["role"] for m in shown] == ["user", "assistant", "tool", "tool"]
    assert shown[1]["tool_calls"] == calls("c1", "c2")
    fetched = await client.get(f"/api/messages/{assistant['id']}", headers=alice)
    assert fetched.json() == assistant
    # An assistant message may also say something while it calls, and old clients may post a
    # tool message without a call id.
    spoken = await send(
        client, sid, alice, role="assistant", content="Checking.", tool_calls=calls("c3")
    )
    assert spoken.json()["content"] == "Checking."
    legacy = await send(client, sid, alice, role="tool", content="untied result")
    assert (legacy.status_code, legacy.json()["tool_call_id"]) == (201, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "user", "content": "x", "tool_calls": calls("c1")}, "tool_calls"),
        ({"role": "assistant", "content": "x", "tool_call_id": "c1"}, "tool_call_id"),
        ({"role": "assistant"}, "content"),
        ({"role": "assistant", "content": None}, "content"),
        ({"role": "tool", "tool_call_id": "c1"}, "content"),
        ({"role": "assistant", "tool_calls": []}, "tool_calls"),
        ({"role": "assistant", "tool_calls": None}, "tool_calls"),
        ({"role": "assistant", "tool_calls": calls(*[f"c{i}" for i in range(65)])}, "tool_calls"),
        ({"role": "assistant", "tool_calls": calls("c1", "c1")}, "tool_calls"),
        ({"role": "assistant", "tool_calls": calls("x" * 129)}, "id"),
        ({"role": "assistant", "tool_calls": calls("has space")}, "id"),
        ({"role": "assistant", "tool_calls": calls("c1", name="no spaces")}, "name"),
        ({"role": "assistant", "tool_calls": calls("c1", name="x" * 65)}, "name"),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{city"}}],
            },
            "arguments",
        ),
        (
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "web", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            "type",
        ),
        ({"role": "tool", "content": "r", "tool_call_id": "nothing-asked-this"}, "tool_call_id"),
        ({"role": "tool", "content": "r", "tool_call_id": ""}, "tool_call_id"),
    ],
)
async def test_bad_tool_data_is_422_naming_the_field_and_writes_nothing(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, Any], field: str
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    first = await post(client, sid, alice, "hi")
    response = await send(client, sid, alice, **body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"][-1] == field
    assert field in response.json()["detail"]
    after = await session(client, sid, alice)
    assert (after["message_count"], after["current_message_id"]) == (1, first["id"])


async def test_a_result_answers_its_branch_once(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    question = await post(client, sid, alice, "q")
    await send(client, sid, alice, role="assistant", tool_calls=calls("c1"))
    answered = await send(client, sid, alice, role="tool", content="r", tool_call_id="c1")
    again = await send(client, sid, alice, role="tool", content="r2", tool_call_id="c1")
    assert again.status_code == 422
    assert f"message {answered.json()['id']}" in again.json()["detail"]
    # From the question's branch the call is not there to answer.
    await client.patch(
        f"/api/sessions/{sid}", json={"current_message_id": question["id"]}, headers=alice
    )
    elsewhere = await send(client, sid, alice, role="tool", content="r", tool_call_id="c1")
    assert elsewhere.status_code == 422
    assert "current branch" in elsewhere.json()["detail"]
    assert (await session(client, sid, alice))["message_count"] == 3


async def test_results_posted_at_once_all_land_on_the_branch(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    """Parallel tool calls, their results posted concurrently. Each append waits for the
    session's lock while others commit, so its snapshot often cannot see the message it goes
    under; it is then run again holding the lock. All land, chained, each call answered once;
    concurrent duplicates of one answer: exactly one wins."""
    alice = auth("alice")
    sid = await new_session(client, alice)
    await post(client, sid, alice, "go")
    ids = [f"call_{i}" for i in range(20)]
    await send(client, sid, alice, role="assistant", tool_calls=calls(*ids))
    answers = await asyncio.gather(
        *(send(client, sid, alice, role="tool", content=f"r{c}", tool_call_id=c) for c in ids),
        *(
            send(client, sid, alice, role="tool", content="dup", tool_call_id="call_0")
            for _ in range(5)
        ),
    )
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 20, [a.text for a in answers if a.status_code != 201]
    assert statuses.count(422) == 5  # call_0 was answered six times at once: once for good
    saved = sorted((a.json() for a in answers if a.status_code == 201), key=lambda m: m["id"])
    assert sorted(m["tool_call_id"] for m in saved) == sorted(ids)
    chain = await thread(client, sid, alice)
    assert [m["id"] for m in chain[2:]] == [m["id"] for m in saved]
    assert (await session(client, sid, alice))["message_count"] == 22


async def test_tool_messages_keep_their_json_exactly(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    arguments = json.dumps({"q": 'naïve "quotes" \\ and \\u0000 escapes', "n": [1, 2.5]})
    body = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]
    saved = await send(client, sid, alice, role="assistant", tool_calls=body)
    assert saved.status_code == 201, saved.text
    fetched = await client.get(f"/api/messages/{saved.json()['id']}", headers=alice)
    assert fetched.json()["tool_calls"][0]["function"]["arguments"] == arguments


async def test_a_fork_copies_tool_data_and_its_calls_can_be_answered_there(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(client, alice)
    await post(client, sid, alice, "q")
    await send(client, sid, alice, role="assistant", tool_calls=calls("c1", "c2"))
    await send(client, sid, alice, role="tool", content="r1", tool_call_id="c1")
    fork = (await client.post(f"/api/sessions/{sid}/fork", headers=alice)).json()
    copied = await thread(client, fork["id"], alice)
    assert [(m["role"], m["tool_calls"], m["tool_call_id"]) for m in copied] == [
        ("user", None, None),
        ("assistant", calls("c1", "c2"), None),
        ("tool", None, "c1"),
    ]
    # The copy is a branch of its own: c2 can be answered there, c1 already is.
    answered = await send(client, fork["id"], alice, role="tool", content="r2", tool_call_id="c2")
    assert answered.status_code == 201
    again = await send(client, fork["id"], alice, role="tool", content="x", tool_call_id="c1")
    assert f"message {copied[2]['id']}" in again.json()["detail"]
    assert (await session(client, sid, alice))["message_count"] == 3
