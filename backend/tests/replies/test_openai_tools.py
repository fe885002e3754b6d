"""The agent loop against the local Chat Completions wire server, through the official SDK:
exactly what is sent (roles, calls, results, tools, tool_choice), and calls parsed from real
streamed chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.replies.conftest import Serve
from tests.support.fake_llm import Call, FakeChatServer, Script
from tests.support.replies import new_session
from tests.support.sse import Event, collect, text_of

Auth = Callable[[str], dict[str, str]]
Headers = dict[str, str]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
SYSTEM = {"role": "system", "content": "Be brief."}
MODEL = "fake-model-2026-01-01"


@pytest.fixture
async def http(serve: Serve, llm: FakeChatServer) -> AsyncIterator[httpx.AsyncClient]:
    server = await serve(
        llm_provider="openai",
        llm_base_url=llm.url,
        llm_api_key=SecretStr("sk-test-key"),
        llm_model="configured-model",
        llm_max_retries=0,
        llm_read_timeout_s=5.0,
        llm_system_prompt="Be brief.",
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        yield client


async def reply(http: httpx.AsyncClient, sid: int, headers: Headers, **body: Any) -> list[Event]:
    async with http.stream(
        "POST", f"/api/sessions/{sid}/replies", json=body, headers=headers
    ) as response:
        return await collect(response)


def wire_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


async def test_the_agent_loop_sends_calls_and_results_as_chat_completions_requires(
    http: httpx.AsyncClient, llm: FakeChatServer, auth: Auth
) -> None:
    weather = wire_call("call_abc", "get_weather", '{"city": "Lisbon"}')
    clock = wire_call("call_def", "get_time", '{"tz": "Europe/Lisbon"}')
    llm.scripts.extend(
        [
            Script(
                chunks=[],
                tool_calls=[
                    Call("call_abc", "get_weather", '{"city": "Lisbon"}', piece=3),
                    Call("call_def", "get_time", '{"tz": "Europe/Lisbon"}'),
                ],
                model=MODEL,
                usage=(30, 12),
            ),
            Script(chunks=["It is ", "18 °C at noon."], model=MODEL),
        ]
    )
    alice = auth("alice")
    sid = await new_session(http, alice)

    asked = await reply(
        http, sid, alice, content="Weather and time in Lisbon?", tools=[WEATHER, CLOCK]
    )
    assert [(e.event, e.id) for e in asked] == [
        ("user", "user"),
        ("message", "0"),
        ("tool_call", "tool:0"),
        ("tool_call", "tool:1"),
        ("done", "end"),
    ]
    assert [asked[2].data, asked[3].data] == [weather, clock]
    done = asked[-1].data
    assert (done["status"], done["content"], done["finish_reason"]) == (
        "completed",
        "",
        "tool_calls",
    )
    assert (done["tool_calls"], done["model"]) == ([weather, clock], MODEL)
    assert (done["input_tokens"], done["tokens"]) == (30, 12)

    first = llm.requests[0].body
    assert first["messages"] == [SYSTEM, {"role": "user", "content": "Weather and time in Lisbon?"}]
    assert (first["tools"], "tool_choice" in first) == ([WEATHER, CLOCK], False)
    assert (first["model"], first["stream"]) == ("configured-model", True)

    # The client runs the tools and posts the results (in any order), then asks to continue.
    for call_id, result in (("call_def", "12:00"), ("call_abc", "18 °C, sunny")):
        posted = await http.post(
            f"/api/messages/?session_id={sid}",
            json={"role": "tool", "content": result, "tool_call_id": call_id},
            headers=alice,
        )
        assert posted.status_code == 201, posted.text
    continued = await reply(http, sid, alice, tools=[WEATHER, CLOCK], tool_choice="none")
    assert [e.event for e in continued if e.event != "delta"] == ["message", "done"]
    final = continued[-1].data
    assert (final["content"], final["finish_reason"], final["tool_calls"]) == (
        "It is 18 °C at noon.",
        "stop",
        None,
    )

    second = llm.requests[1].body
    assert second["messages"] == [
        SYSTEM,
        {"role": "user", "content": "Weather and time in Lisbon?"},
        {"role": "assistant", "content": None, "tool_calls": [weather, clock]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "18 °C, sunny"},
        {"role": "tool", "tool_call_id": "call_def", "content": "12:00"},
    ]
    assert (second["tools"], second["tool_choice"]) == ([WEATHER, CLOCK], "none")

    # Regenerating the answer sends the same branch again: its parent's path, nothing else.
    llm.scripts.append(Script(chunks=["Sunny, 18 °C."]))
    async with http.stream(
        "POST",
        f"/api/messages/{final['id']}/regenerate",
        json={
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        headers=alice,
    ) as response:
        again = await collect(response)
    assert again[-1].data["content"] == "Sunny, 18 °C."
    third = llm.requests[2].body
    assert third["messages"] == second["messages"]
    assert third["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_text_then_a_call_in_small_pieces_and_a_resumed_stream(
    http: httpx.AsyncClient, llm: FakeChatServer, auth: Auth
) -> None:
    arguments = json.dumps({"query": "naïve “quotes” and \\ escapes", "limit": 3})
    llm.scripts.append(
        Script(chunks=["Let me ", "look."], tool_calls=[Call("call_1", "search", arguments, 2)])
    )
    alice = auth("alice")
    sid = await new_session(http, alice)
    search = {"type": "function", "function": {"name": "search"}}
    asked = await reply(http, sid, alice, content="Find it", tools=[search], tool_choice="required")
    assert [e.event for e in asked if e.event != "delta"] == [
        "user",
        "message",
        "tool_call",
        "done",
    ]
    assert text_of(asked) == "Let me look."
    assert asked[-2].data == wire_call("call_1", "search", arguments)
    done = asked[-1].data
    assert (done["content"], done["finish_reason"], done["model"]) == (
        "Let me look.",
        "tool_calls",
        "fake-model",
    )
    assert llm.requests[0].body["tools"] == [search]
    assert llm.requests[0].body["tool_choice"] == "required"
    url = f"/api/messages/{done['id']}/stream"
    # After the text: the call and the end; after the call: the end only.
    async with http.stream("GET", url, headers={**alice, "Last-Event-ID": "12"}) as response:
        assert [(e.event, e.id) for e in await collect(response)] == [
            ("tool_call", "tool:0"),
            ("done", "end"),
        ]
    async with http.stream("GET", url, headers={**alice, "Last-Event-ID": "tool:0"}) as response:
        assert [e.event for e in await collect(response)] == ["done"]


async def test_a_plain_reply_records_the_reported_model_and_stop(
    http: httpx.AsyncClient, llm: FakeChatServer, auth: Auth
) -> None:
    llm.scripts.append(Script(model=MODEL))
    alice = auth("alice")
    sid = await new_session(http, alice)
    done = (await reply(http, sid, alice, content="hi"))[-1].data
    assert (done["content"], done["finish_reason"], done["model"]) == (
        "Hello, world",
        "stop",
        MODEL,
    )
    assert "tools" not in llm.requests[0].body
