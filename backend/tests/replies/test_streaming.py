"""Starting, following, replaying and validating replies against a real uvicorn."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.replies.conftest import Serve
from tests.support.replies import (
    expected_reply,
    get_message,
    new_session,
    reply_stream,
    wait_until_ended,
)
from tests.support.sse import Event, collect, events, text_of

Auth = Callable[[str], dict[str, str]]


async def test_reply_streams_then_is_saved_with_usage(http: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    async with reply_stream(http, sid, "Plan my trip", alice) as response:
        received = await collect(response)

    user, started, *deltas, done = received
    assert (user.event, user.id, user.data["role"], user.data["status"]) == (
        "user",
        "user",
        "user",
        "completed",
    )
    assert user.data["content"] == "Plan my trip"
    assert (started.event, started.id, started.data["status"]) == ("message", "0", "streaming")
    assert started.data["role"] == "assistant"
    assert started.data["content"] == ""
    assert deltas
    assert {d.event for d in deltas} == {"delta"}
    assert (done.event, done.id, done.data["status"]) == ("done", "end", "completed")
    expected = expected_reply("Plan my trip", 20)
    assert text_of(received) == expected == done.data["content"]
    assert done.data["tokens"] == 20
    assert done.data["input_tokens"] > 0

    saved = await get_message(http, started.data["id"], alice)
    assert saved == done.data
    listed = (await http.get(f"/api/messages/?session_id={sid}", headers=alice)).json()
    assert [(m["role"], m["status"]) for m in listed] == [
        ("user", "completed"),
        ("assistant", "completed"),
    ]
    session = (await http.get(f"/api/sessions/{sid}", headers=alice)).json()
    assert session["message_count"] == 2


async def test_a_second_reply_sees_the_conversation(http: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    finals = []
    for prompt in ("first question", "first question"):
        async with reply_stream(http, sid, prompt, alice) as response:
            finals.append((await collect(response))[-1].data)
    # The simulated model hashes the whole prompt: same question, different history.
    assert finals[0]["content"] != finals[1]["content"]
    assert finals[1]["input_tokens"] > finals[0]["input_tokens"]


async def test_generation_does_not_depend_on_the_client(serve: Serve, auth: Auth) -> None:
    server = await serve(simulated_delay_ms=15)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "go on", alice) as response:
            stream = events(response)
            await anext(stream)  # user
            reply_id = (await anext(stream)).data["id"]
        # Disconnected before any text: the reply still completes and is saved.
        final = await wait_until_ended(http, reply_id, alice)
    assert final["status"] == "completed"
    assert final["content"] == expected_reply("go on", 20)


async def test_rejoin_after_disconnect_continues_exactly(serve: Serve, auth: Auth) -> None:
    server = await serve(simulated_delay_ms=15, simulated_tokens=30)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        first: list[Event] = []
        async with reply_stream(http, sid, "tell me", alice) as response:
            async for event in events(response):
                first.append(event)
                if sum(e.event == "delta" for e in first) == 3:
                    break  # drop the connection mid-stream
        reply_id = first[1].data["id"]
        async with http.stream(
            "GET",
            f"/api/messages/{reply_id}/stream",
            headers={**alice, "Last-Event-ID": first[-1].id},
        ) as response:
            rest = await collect(response)

    assert rest[0].event == "delta", "no start event again, no duplicate"
    assert int(rest[0].id) - len(rest[0].data["text"]) == int(first[-1].id), "no gap"
    assert rest[-1].event == "done"
    assert rest[-1].data["status"] == "completed"
    assert text_of(first + rest) == expected_reply("tell me", 30) == rest[-1].data["content"]


async def test_finished_reply_replays_and_closes(http: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    async with reply_stream(http, sid, "hello", alice) as response:
        live = await collect(response)
    reply_id = live[1].data["id"]
    content = live[-1].data["content"]
    url = f"/api/messages/{reply_id}/stream"

    async with http.stream("GET", url, headers=alice) as response:
        replay = await collect(response)
    assert [e.event for e in replay] == ["message", "delta", "done"]
    assert replay[0].data == live[1].data
    assert (replay[1].id, replay[1].data["text"]) == (str(len(content)), content)
    assert replay[2] == live[-1]

    async with http.stream("GET", url, headers={**alice, "Last-Event-ID": "5"}) as response:
        tail = await collect(response)
    assert [(e.event, e.id) for e in tail] == [("delta", str(len(content))), ("done", "end")]
    assert tail[0].data["text"] == content[5:]

    async with http.stream("GET", f"{url}?last_event_id=0", headers=alice) as response:
        assert text_of(await collect(response)) == content
    async with http.stream("GET", url, headers={**alice, "Last-Event-ID": "end"}) as response:
        assert await collect(response) == []


@pytest.mark.parametrize("last_event_id", ["-1", "abc", "1.5", "99999999999"])
async def test_bad_last_event_id_is_422(
    http: httpx.AsyncClient, auth: Auth, last_event_id: str
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    async with reply_stream(http, sid, "x", alice) as response:
        reply_id = (await collect(response))[1].data["id"]
    response = await http.get(
        f"/api/messages/{reply_id}/stream", headers={**alice, "Last-Event-ID": last_event_id}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_partial_text_is_visible_while_streaming(serve: Serve, auth: Auth) -> None:
    server = await serve(simulated_delay_ms=20, simulated_tokens=200)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "slow", alice) as response:
            stream = events(response)
            await anext(stream)
            reply_id = (await anext(stream)).data["id"]
            partial = None
            async for _ in stream:
                message = await get_message(http, reply_id, alice)
                if message["content"]:
                    partial = message
                    break
        assert partial is not None
        assert partial["status"] == "streaming"
        assert expected_reply("slow", 200).startswith(partial["content"])
        await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)


async def test_one_reply_at_a_time_per_session(serve: Serve, auth: Auth) -> None:
    server = await serve(simulated_delay_ms=20, simulated_tokens=500)
    alice = auth("alice")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        other = await new_session(http, alice)
        async with reply_stream(http, sid, "one", alice) as response:
            stream = events(response)
            await anext(stream)
            reply_id = (await anext(stream)).data["id"]

            second = await http.post(
                f"/api/sessions/{sid}/replies", json={"content": "two"}, headers=alice
            )
            assert second.status_code == 409
            assert second.headers["content-type"] == "application/problem+json"
            problem = second.json()
            assert problem["running_message_id"] == reply_id
            assert str(reply_id) in problem["detail"]
            # Other sessions are not blocked.
            async with reply_stream(http, other, "x", alice) as parallel:
                assert parallel.status_code == 200
                started = await collect(parallel, limit=2)
                assert started[1].data["status"] == "streaming"
            await http.post(f"/api/messages/{started[1].data['id']}/cancel", headers=alice)

            cancelled = await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)
            assert cancelled.json()["status"] == "cancelled"
        listed = (await http.get(f"/api/messages/?session_id={sid}", headers=alice)).json()
        assert [m["content"] for m in listed if m["role"] == "user"] == ["one"], "409 saved nothing"
        async with reply_stream(http, sid, "three", alice) as response:
            started = await collect(response, limit=2)
        assert started[1].data["status"] == "streaming"
        await http.post(f"/api/messages/{started[1].data['id']}/cancel", headers=alice)


async def test_other_users_and_missing_messages_are_404(serve: Serve, auth: Auth) -> None:
    server = await serve(simulated_delay_ms=20, simulated_tokens=500)
    alice, bob = auth("alice"), auth("bob")
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with reply_stream(http, sid, "mine", alice) as response:
            stream = events(response)
            await anext(stream)
            reply_id = (await anext(stream)).data["id"]
            for target in (reply_id, 987654):
                streamed = await http.get(f"/api/messages/{target}/stream", headers=bob)
                cancelled = await http.post(f"/api/messages/{target}/cancel", headers=bob)
                assert streamed.status_code == cancelled.status_code == 404
                assert streamed.json()["detail"] == f"message {target} not found"
            replied = await http.post(
                f"/api/sessions/{sid}/replies", json={"content": "hijack"}, headers=bob
            )
            assert replied.status_code == 404
            assert (await get_message(http, reply_id, alice))["status"] == "streaming"
            await http.post(f"/api/messages/{reply_id}/cancel", headers=alice)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": ""},
        {"content": "   "},
        {"content": "a\x00b"},
        {"content": "x", "role": "user"},
        {"content": "x" * 100_001},
    ],
)
async def test_bad_reply_input_is_422_and_saves_nothing(
    http: httpx.AsyncClient, auth: Auth, body: dict[str, str]
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    response = await http.post(f"/api/sessions/{sid}/replies", json=body, headers=alice)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (await http.get(f"/api/sessions/{sid}", headers=alice)).json()["message_count"] == 0


async def test_reply_endpoints_need_a_token(http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/sessions/1/replies", json={"content": "x"})).status_code == 401
    assert (await http.get("/api/messages/1/stream")).status_code == 401
    assert (await http.post("/api/messages/1/cancel")).status_code == 401


async def test_plain_messages_still_refuse_empty_content(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    response = await http.post(
        f"/api/messages/?session_id={sid}", json={"role": "assistant", "content": ""}, headers=alice
    )
    assert response.status_code == 422
