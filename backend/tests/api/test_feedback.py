"""Feedback on replies over HTTP: set, replaced, removed, refused on other roles, and shown the
same way by every route that answers with the message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.replies import get_message, new_session, reply_stream
from tests.support.sse import events

Auth = Callable[[str], dict[str, str]]


async def _replied(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, Any]:
    """A session with one exchange; the `done` event's message."""
    sid = await new_session(client, headers)
    async with reply_stream(client, sid, "rate me", headers) as response:
        done = [event async for event in events(response) if event.event == "done"]
    return sid, done[0].data


async def _everywhere(
    client: httpx.AsyncClient, sid: int, message_id: int, headers: dict[str, str]
) -> list[Any]:
    """The message's `feedback` as each route shows it: get, list, thread, the reply's stream."""
    listed = (await client.get(f"/api/messages/?session_id={sid}", headers=headers)).json()
    thread = (await client.get(f"/api/sessions/{sid}/thread", headers=headers)).json()
    async with client.stream("GET", f"/api/messages/{message_id}/stream", headers=headers) as r:
        done = [event.data async for event in events(r) if event.event == "done"]
    return [
        (await get_message(client, message_id, headers))["feedback"],
        next(m for m in listed if m["id"] == message_id)["feedback"],
        next(m for m in thread if m["id"] == message_id)["feedback"],
        done[0]["feedback"],
    ]


async def test_feedback_is_given_replaced_removed_and_shown_everywhere(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid, reply = await _replied(client, alice)
    assert reply["feedback"] is None  # the `done` event carries it too
    url = f"/api/messages/{reply['id']}/feedback"

    up = await client.put(url, json={"rating": "up"}, headers=alice)
    assert up.status_code == 200, up.text
    assert up.json()["rating"] == "up"
    assert up.json()["comment"] is None
    down = await client.put(url, json={"rating": "down", "comment": "wrong city"}, headers=alice)
    assert down.status_code == 200
    assert down.json()["created_at"] >= up.json()["created_at"]
    assert await _everywhere(client, sid, reply["id"], alice) == [down.json()] * 4

    removed = await client.delete(url, headers=alice)
    assert removed.status_code == 204
    assert await _everywhere(client, sid, reply["id"], alice) == [None] * 4
    again = await client.delete(url, headers=alice)
    assert again.status_code == 204  # idempotent: removing no feedback is not an error


async def test_a_user_message_takes_no_feedback(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    _, reply = await _replied(client, alice)
    question = reply["parent_id"]
    for method, body in (("PUT", {"rating": "up"}), ("DELETE", None)):
        refused = await client.request(
            method, f"/api/messages/{question}/feedback", json=body, headers=alice
        )
        assert refused.status_code == 422, refused.text
        assert "only assistant messages take feedback" in refused.json()["detail"]
        assert refused.json()["errors"][0]["loc"] == ["path", "message_id"]
    assert (await get_message(client, question, alice))["feedback"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "meh"},
        {},
        {"rating": "up", "comment": "x" * 2001},
        {"rating": "up", "comment": None},
        {"rating": "up", "comment": "nul\u0000"},
        {"rating": "up", "extra": 1},
    ],
)
async def test_bad_feedback_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, auth: Auth, body: dict[str, Any]
) -> None:
    alice = auth("alice")
    _, reply = await _replied(client, alice)
    refused = await client.put(f"/api/messages/{reply['id']}/feedback", json=body, headers=alice)
    assert refused.status_code == 422, refused.text
    assert (await get_message(client, reply["id"], alice))["feedback"] is None


async def test_a_comment_of_2000_characters_is_kept(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    _, reply = await _replied(client, alice)
    comment = "é" * 2000
    given = await client.put(
        f"/api/messages/{reply['id']}/feedback",
        json={"rating": "down", "comment": comment},
        headers=alice,
    )
    assert given.status_code == 200
    assert (await get_message(client, reply["id"], alice))["feedback"]["comment"] == comment
