"""A leaving process hands its streams off: they end without a final event, the reply goes on
generating there, and a client that reconnects with Last-Event-ID to another process gets the
rest — no duplicate, no gap."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.replies.conftest import Serve
from tests.support.replies import expected_reply, new_session, reply_stream, wait_until_ended
from tests.support.sse import Event, collect, events, text_of

Auth = Callable[[str], dict[str, str]]

SLOW = {"simulated_delay_ms": 20.0, "simulated_tokens": 60, "reply_shutdown_grace_s": 10.0}


async def test_released_streams_end_cleanly_and_resume_elsewhere(serve: Serve, auth: Auth) -> None:
    leaving = await serve(**SLOW)
    staying = await serve(**SLOW)
    alice = auth("alice")
    async with (
        httpx.AsyncClient(base_url=leaving.url, timeout=20) as a,
        httpx.AsyncClient(base_url=staying.url, timeout=20) as b,
    ):
        sid = await new_session(a, alice)
        first: list[Event] = []
        async with reply_stream(a, sid, "move", alice) as response:
            async for event in events(response):
                first.append(event)
                if event.event == "delta" and len(first) == 4:
                    leaving.app.state.reply_runtime.release_streams()
        reply_id = first[1].data["id"]
        # A clean end without a final event: the reply is not over.
        assert first[-1].event == "delta", [e.event for e in first]
        # New followers of the leaving process are let go at once too.
        async with a.stream("GET", f"/api/messages/{reply_id}/stream", headers=alice) as again:
            assert [e.event for e in await collect(again)] == ["message"]
        async with b.stream(
            "GET",
            f"/api/messages/{reply_id}/stream",
            headers={**alice, "Last-Event-ID": first[-1].id},
        ) as response:
            rest = await collect(response)
        stored = await wait_until_ended(b, reply_id, alice)
    assert rest[-1].event == "done"
    assert stored["status"] == "completed"  # it kept generating in the leaving process
    assert text_of(first + rest) == stored["content"] == expected_reply("move", 60)
