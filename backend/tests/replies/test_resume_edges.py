"""Resuming a reply's stream at its edges: `Last-Event-ID: 0` (has the start event, no text
yet) and `Last-Event-ID: <full length>` (has all the text, not the final event)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.replies.conftest import Serve
from tests.support.replies import expected_reply, new_session, reply_stream
from tests.support.sse import Event, collect, events, text_of

Auth = Callable[[str], dict[str, str]]


async def _finished_reply(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> tuple[int, list[Event]]:
    sid = await new_session(http, headers)
    async with reply_stream(http, sid, "edges", headers) as response:
        live = await collect(response)
    assert live[-1].event == "done"
    reply_id: int = live[1].data["id"]
    return reply_id, live


async def _resume(
    http: httpx.AsyncClient, reply_id: int, headers: dict[str, str], **kw: str
) -> list[Event]:
    query = f"?last_event_id={kw['query']}" if "query" in kw else ""
    extra = {"Last-Event-ID": kw["header"]} if "header" in kw else {}
    async with http.stream(
        "GET", f"/api/messages/{reply_id}/stream{query}", headers={**headers, **extra}
    ) as response:
        return await collect(response)


async def test_finished_reply_resumed_at_0_sends_no_start_event(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    reply_id, live = await _finished_reply(http, alice)
    content = live[-1].data["content"]
    for where in ({"header": "0"}, {"query": "0"}):
        resumed = await _resume(http, reply_id, alice, **where)
        assert [(e.event, e.id) for e in resumed] == [
            ("delta", str(len(content))),
            ("done", "end"),
        ], where
        assert resumed[0].data["text"] == content
        assert resumed[1] == live[-1]


async def test_finished_reply_resumed_at_its_length_sends_only_done(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    reply_id, live = await _finished_reply(http, alice)
    length = str(len(live[-1].data["content"]))
    for where in ({"header": length}, {"query": length}):
        resumed = await _resume(http, reply_id, alice, **where)
        assert resumed == [live[-1]], where


async def test_finished_reply_resumed_after_the_user_event_replays_from_the_start(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    reply_id, live = await _finished_reply(http, alice)
    resumed = await _resume(http, reply_id, alice, header="user")
    assert [e.event for e in resumed] == ["message", "delta", "done"]
    assert resumed[0] == live[1]
    assert text_of(resumed) == live[-1].data["content"]


async def test_streaming_reply_resumed_at_0_continues_with_text(serve: Serve, auth: Auth) -> None:
    server = await serve(simulated_delay_ms=15, simulated_tokens=30)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "live", alice) as response:
            stream = events(response)
            await anext(stream)  # user
            started = await anext(stream)
            assert (started.event, started.id) == ("message", "0")
            resumed = await _resume(http, started.data["id"], alice, header="0")
    assert resumed[0].event == "delta", "no start event again"
    assert int(resumed[0].id) == len(resumed[0].data["text"]), "the text from character 0"
    assert {e.event for e in resumed[:-1]} == {"delta"}
    assert resumed[-1].event == "done"
    assert text_of(resumed) == expected_reply("live", 30) == resumed[-1].data["content"]
