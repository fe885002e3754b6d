"""The `openai` provider, end to end: our API → the official SDK → a Chat Completions server on
127.0.0.1 (tests/support/fake_llm.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.replies.conftest import Serve
from tests.support.fake_llm import FakeChatServer, Script, settings_for
from tests.support.replies import get_message, new_session, reply_stream, wait_until_ended
from tests.support.sse import collect, events, text_of

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def openai_settings(llm: FakeChatServer) -> dict[str, Any]:
    return settings_for(llm)


async def reply(http: httpx.AsyncClient, sid: int, content: str, alice: dict[str, str]) -> Any:
    async with reply_stream(http, sid, content, alice) as response:
        return await collect(response)


async def test_streams_the_model_reply_and_records_usage(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    server = await serve(**openai_settings, llm_system_prompt="Be brief.")
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        received = await reply(http, sid, "Say hello", alice)
    done = received[-1]
    assert text_of(received) == "Hello, world" == done.data["content"]
    assert (done.event, done.data["status"]) == ("done", "completed")
    assert (done.data["input_tokens"], done.data["tokens"]) == (12, 3)

    (request,) = llm.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-key"
    assert request.body["model"] == "fake-model"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]


async def test_context_is_the_newest_messages_within_budget_in_order(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    server = await serve(**openai_settings, llm_context_chars=40)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        for role, content in [("user", "a" * 30), ("assistant", "old answer"), ("user", "q2")]:
            response = await http.post(
                f"/api/messages/?session_id={sid}",
                json={"role": role, "content": content},
                headers=alice,
            )
            assert response.status_code == 201
        await reply(http, sid, "newest question", alice)
    # 15 + 2 + 10 characters fit the 40-character budget; the 30-character message does not.
    assert llm.requests[0].body["messages"] == [
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "q2"},
        {"role": "user", "content": "newest question"},
    ]


async def test_error_mid_stream_fails_the_reply_and_keeps_partial_text(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    llm.scripts.append(Script(chunks=["Part", "ial"], error_after="model overloaded"))
    server = await serve(**openai_settings)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        received = await reply(http, sid, "try", alice)
        final = received[-1]
        assert (final.event, final.id) == ("error", "end")
        assert final.data["message"]["status"] == "failed"
        assert "model overloaded" in final.data["detail"]
        assert text_of(received) == "Partial" == final.data["message"]["content"]
        listed = (await http.get(f"/api/messages/?session_id={sid}", headers=alice)).json()
    assert [(m["role"], m["status"], m["content"]) for m in listed] == [
        ("user", "completed", "try"),
        ("assistant", "failed", "Partial"),
    ]


async def test_connection_dropped_mid_stream_fails_the_reply(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    llm.scripts.append(Script(chunks=["Half"], drop_after=True))
    server = await serve(**openai_settings)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        final = (await reply(http, sid, "try", alice))[-1]
    assert final.data["message"]["status"] == "failed"
    assert final.data["message"]["content"] == "Half"


async def test_a_model_that_never_answers_times_out(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    llm.default = Script(hang=True)
    server = await serve(**{**openai_settings, "llm_read_timeout_s": 0.3})
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        final = (await reply(http, sid, "hello?", alice))[-1]
    assert final.event == "error"
    assert final.data["message"]["status"] == "failed"
    assert final.data["message"]["content"] == ""
    assert "did not answer within 0.3 s" in final.data["detail"]


async def test_failures_before_the_first_token_are_retried(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    llm.scripts.extend([Script(status=503), Script(status=429)])
    server = await serve(**{**openai_settings, "llm_max_retries": 2})
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        final = (await reply(http, sid, "again", alice))[-1]
    assert final.data["status"] == "completed"
    assert final.data["content"] == "Hello, world"
    assert len(llm.requests) == 3


async def test_a_refused_request_fails_with_the_status(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    llm.scripts.append(Script(status=401))
    server = await serve(**openai_settings)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        final = (await reply(http, sid, "hi", alice))[-1]
    assert final.data["message"]["status"] == "failed"
    assert "(401)" in final.data["detail"]


async def test_cancel_closes_the_model_call(
    serve: Serve, openai_settings: dict[str, Any], llm: FakeChatServer, auth: Auth
) -> None:
    llm.default = Script(chunks=[f" w{i}" for i in range(1000)], delay_s=0.02)
    server = await serve(**openai_settings)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "go", alice) as response:
            stream = events(response)
            received = [await anext(stream), await anext(stream), await anext(stream)]
            assert received[2].event == "delta"
            reply_id = received[1].data["id"]
            cancelled = await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)
            received += [event async for event in stream]
        assert cancelled.status_code == 200
        body = cancelled.json()
        assert body["status"] == "cancelled"
        assert body["content"]
        assert " w0 w1 w2".startswith(body["content"][:9])
        # The provider sees its connection closed; the stream ended with the cancelled message.
        await asyncio.wait_for(llm.disconnected.wait(), 5)
        assert llm.disconnects == 1
        assert received[-1].event == "done"
        assert received[-1].data == body
        assert text_of(received) == body["content"]
        assert (await get_message(http, reply_id, alice)) == body
        assert (await wait_until_ended(http, reply_id, alice))["status"] == "cancelled"
