"""Cancel stops the generation itself, not only the message's status.

Progress is persisted only every 10 s in these tests: a cancel must stop the model at once,
not whenever a progress write happens to notice that the row is no longer streaming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from tests.replies.conftest import Serve
from tests.support.fake_llm import FakeChatServer, Script, settings_for
from tests.support.replies import expected_reply, get_message, new_session, reply_stream
from tests.support.sse import Event, events, text_of

Auth = Callable[[str], dict[str, str]]

#: README: cancel "stops the model call within a second"; the slack is for a loaded machine.
STOP_BOUND_S = 2.0
SLOW_FLUSH = {"reply_flush_ms": 10_000}


async def _rest(stream: AsyncIterator[Event]) -> list[Event]:
    async def drain() -> list[Event]:
        return [event async for event in stream]

    return await asyncio.wait_for(drain(), 10)


async def _stays_put(http: httpx.AsyncClient, reply_id: int, alice: dict[str, str]) -> Any:
    """The stored message, read twice a few hundred ms apart: it must not change any more."""
    first = await get_message(http, reply_id, alice)
    await asyncio.sleep(0.4)
    second = await get_message(http, reply_id, alice)
    assert second == first, "the cancelled message kept changing"
    return second


async def test_cancel_closes_the_model_connection_within_the_bound(
    serve: Serve, llm: FakeChatServer, auth: Auth
) -> None:
    chunks = [f" w{i}" for i in range(1000)]
    full = "".join(chunks)
    llm.default = Script(chunks=chunks, delay_s=0.02)  # 20 s if nobody stops it
    server = await serve(**settings_for(llm), **SLOW_FLUSH)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "go", alice) as response:
            stream = events(response)
            received = [await anext(stream) for _ in range(4)]
            assert [e.event for e in received] == ["user", "message", "delta", "delta"]
            reply_id = received[1].data["id"]
            assert not llm.disconnected.is_set()

            asked = time.monotonic()
            cancelled = await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)
            answered_s = time.monotonic() - asked
            try:
                await asyncio.wait_for(llm.disconnected.wait(), STOP_BOUND_S)
            except TimeoutError:
                raise AssertionError(
                    f"the model connection was still open {STOP_BOUND_S} s after the cancel"
                ) from None
            closed_s = time.monotonic() - asked
            received += await _rest(stream)

        assert cancelled.status_code == 200, cancelled.text
        assert answered_s < STOP_BOUND_S, f"cancel took {answered_s:.1f} s"
        assert closed_s < STOP_BOUND_S, f"the model call was closed after {closed_s:.1f} s"
        assert llm.disconnects == 1
        assert len(llm.requests) == 1, "no retry after a cancel"

        body = cancelled.json()
        assert body["status"] == "cancelled"
        assert body["content"]
        assert full.startswith(body["content"])
        assert len(body["content"]) < len(full)
        assert body["tokens"] > 0, "the chunks received before the cancel are counted"
        assert received[-1].event == "done"
        assert received[-1].data == body
        assert text_of(received) == body["content"]
        assert await _stays_put(http, reply_id, alice) == body


async def test_cancelled_simulated_reply_stops_growing(serve: Serve, auth: Auth) -> None:
    full = expected_reply("stop", 1000)
    server = await serve(simulated_delay_ms=20, simulated_tokens=1000, **SLOW_FLUSH)  # 20 s
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "stop", alice) as response:
            stream = events(response)
            received = [await anext(stream) for _ in range(4)]
            reply_id = received[1].data["id"]

            asked = time.monotonic()
            cancelled = await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)
            answered_s = time.monotonic() - asked
            received += await _rest(stream)

        assert cancelled.status_code == 200, cancelled.text
        assert answered_s < STOP_BOUND_S, f"cancel took {answered_s:.1f} s"
        body = cancelled.json()
        assert body["status"] == "cancelled"
        assert body["content"]
        assert full.startswith(body["content"])
        assert len(body["content"]) < len(full)
        assert body["tokens"] > 0
        assert received[-1].data == body
        assert text_of(received) == body["content"]
        stored = await _stays_put(http, reply_id, alice)
        assert stored == body
        # Well after the cancel, still nothing more: the model is not running in the background.
        await asyncio.sleep(0.5)
        assert await get_message(http, reply_id, alice) == body
