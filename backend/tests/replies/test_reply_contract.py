"""Reply routes' contract: Idempotency-Key on reply starts, streams only for replies,
Last-Event-ID exactly as documented, and the SSE events described in the OpenAPI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema_rs
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from app.api.idempotency import fingerprint
from tests.support.replies import new_session, wait_until_ended
from tests.support.sse import Event, collect

Auth = Callable[[str], dict[str, str]]


async def _start(
    http: httpx.AsyncClient, sid: int, body: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx.Headers, list[Event]]:
    async with http.stream(
        "POST", f"/api/sessions/{sid}/replies", json=body, headers=headers
    ) as response:
        return response.headers, await collect(response)


async def test_a_retried_reply_with_the_same_key_joins_the_first_one(
    http: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    keyed = {**alice, "Idempotency-Key": str(uuid.uuid4())}
    first_headers, first = await _start(http, sid, {"content": "once"}, keyed)
    again_headers, again = await _start(http, sid, {"content": "once"}, keyed)

    assert "idempotent-replayed" not in first_headers
    assert again_headers["idempotent-replayed"] == "true"
    assert [e.event for e in again[:2]] == ["user", "message"]
    assert again[0].data["id"] == first[0].data["id"]
    assert again[1].data["id"] == first[1].data["id"]
    assert again[-1].event == "done"
    assert again[-1].data == first[-1].data
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM messages WHERE session_id = :sid"), {"sid": sid}
            )
        ).scalar()
    assert count == 2  # one user message, one reply: the model was called once


async def test_a_retry_joins_a_reply_that_is_still_streaming(serve: Any, auth: Auth) -> None:
    server = await serve(simulated_tokens=200, simulated_delay_ms=10)
    alice = auth("alice")
    keyed = {**alice, "Idempotency-Key": "retry-while-streaming"}
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        sid = await new_session(http, alice)
        async with http.stream(
            "POST", f"/api/sessions/{sid}/replies", json={"content": "long"}, headers=keyed
        ) as response:
            first = await collect(response, limit=3)
        _, again = await _start(http, sid, {"content": "long"}, keyed)
    assert again[1].data["id"] == first[1].data["id"]
    assert "".join(e.data["text"] for e in again if e.event == "delta") == again[-1].data["content"]
    assert again[-1].event == "done"


async def test_the_same_key_with_another_body_is_422(http: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    keyed = {**alice, "Idempotency-Key": "k-422"}
    await _start(http, sid, {"content": "one"}, keyed)
    other = await http.post(f"/api/sessions/{sid}/replies", json={"content": "two"}, headers=keyed)
    assert other.status_code == 422
    assert other.json()["status"] == 422


async def _fingerprint(path: str, body: bytes) -> str:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"",
             "headers": [], "scheme": "http", "server": ("test", 80), "root_path": ""}  # fmt: skip
    return await fingerprint(Request(scope, receive))


async def test_a_key_still_being_set_up_is_409(
    http: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    path = f"/api/sessions/{sid}/replies"
    # A first request with this key and body that claimed the key and has not committed its
    # exchange yet (its process is still starting the reply).
    digest = await _fingerprint(path, b'{"content": "x"}')
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, claim, locked_at, "
                "expires_at) SELECT id, 'k-409', :digest, gen_random_uuid(), now(), "
                "now() + interval '1 day' FROM users WHERE auth0_id = 'alice'"
            ),
            {"digest": digest},
        )
    busy = await http.post(
        path, json={"content": "x"}, headers={**alice, "Idempotency-Key": "k-409"}
    )
    assert busy.status_code == 409, busy.text
    assert busy.json()["status"] == 409
    assert "still being processed" in busy.json()["detail"]
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text("SELECT count(*) FROM messages WHERE session_id = :sid"), {"sid": sid}
            )
        ).scalar()
    assert count == 0


async def test_a_failed_start_does_not_use_up_the_key(http: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    keyed = {**alice, "Idempotency-Key": "k-missing"}
    missing = await http.post("/api/sessions/999/replies", json={"content": "x"}, headers=keyed)
    assert missing.status_code == 404
    again = await http.post("/api/sessions/999/replies", json={"content": "x"}, headers=keyed)
    assert again.status_code == 404


async def _regenerate(
    http: httpx.AsyncClient, message_id: int, headers: dict[str, str], body: Any = None
) -> tuple[int, httpx.Headers, list[Event]]:
    async with http.stream(
        "POST", f"/api/messages/{message_id}/regenerate", json=body, headers=headers
    ) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, response.headers, []
        return response.status_code, response.headers, await collect(response)


async def test_a_retried_regeneration_with_the_same_key_joins_the_first_one(
    http: httpx.AsyncClient, auth: Auth, engine: AsyncEngine
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    _, first_reply = await _start(http, sid, {"content": "hi"}, alice)
    original = first_reply[1].data["id"]
    keyed = {**alice, "Idempotency-Key": str(uuid.uuid4())}
    status, first_headers, first = await _regenerate(http, original, keyed)
    assert status == 200
    status, again_headers, again = await _regenerate(http, original, keyed)
    assert status == 200
    assert "idempotent-replayed" not in first_headers
    assert again_headers["idempotent-replayed"] == "true"
    assert [e.event for e in again[:1]] == ["message"]  # a regeneration has no user event
    assert again[0].data["id"] == first[0].data["id"] != original
    assert again[-1].event == "done"
    assert again[-1].data == first[-1].data
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM messages WHERE session_id = :sid"), {"sid": sid}
        )
    assert count == 3  # the user message, the original reply, ONE regeneration

    # Without the key the same request is a new regeneration; another body with the key, 422.
    status, _, fresh = await _regenerate(http, original, alice)
    assert status == 200
    assert fresh[0].data["id"] not in {original, first[0].data["id"]}
    other = await http.post(f"/api/messages/{original}/regenerate", json={}, headers=keyed)
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]


async def test_a_failed_regeneration_does_not_use_up_the_key(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    _, started = await _start(http, sid, {"content": "hi"}, alice)
    user_message = started[0].data["id"]
    keyed = {**alice, "Idempotency-Key": "k-regenerate"}
    for _ in range(2):  # a user message cannot be regenerated: 409 both times, not a replay
        status, headers, _ = await _regenerate(http, user_message, keyed)
        assert status == 409
        assert "idempotent-replayed" not in headers
    status, headers, events = await _regenerate(http, started[1].data["id"], keyed)
    assert status == 200  # the key is still free for a request that succeeds
    assert "idempotent-replayed" not in headers
    assert events[-1].event == "done"


async def test_a_user_message_has_no_stream(http: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    _, received = await _start(http, sid, {"content": "hi"}, alice)
    user_id = received[0].data["id"]
    response = await http.get(f"/api/messages/{user_id}/stream", headers=alice)
    assert response.status_code == 409
    assert response.json()["status"] == 409
    assert "not an assistant reply" in response.json()["detail"]
    reply = await http.get(f"/api/messages/{received[1].data['id']}/stream", headers=alice)
    assert reply.status_code == 200


@pytest.mark.parametrize(
    ("last_event_id", "status"),
    [("null", 422), ("abc", 422), ("-1", 422), ("123456789", 422), ("", 200), ("user", 200),
     ("end", 200), ("0", 200), ("5", 200)],
)  # fmt: skip
async def test_last_event_id_is_exactly_what_the_schema_allows(
    http: httpx.AsyncClient, auth: Auth, last_event_id: str, status: int
) -> None:
    alice = auth("alice")
    sid = await new_session(http, alice)
    _, received = await _start(http, sid, {"content": "hi"}, alice)
    reply_id = received[1].data["id"]
    await wait_until_ended(http, reply_id, alice)
    response = await http.get(
        f"/api/messages/{reply_id}/stream", headers={**alice, "Last-Event-ID": last_event_id}
    )
    assert response.status_code == status, response.text
    schema = (await http.get("/openapi.json")).json()
    params = schema["paths"]["/api/messages/{message_id}/stream"]["get"]["parameters"]
    header = next(p for p in params if p["name"] == "last-event-id")
    assert header["schema"]["type"] == "string"  # never null: a header is a string or absent
    assert jsonschema_rs.is_valid(header["schema"], last_event_id) == (status == 200)


async def test_every_event_validates_against_the_openapi_item_schema(
    http: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    schema = (await http.get("/openapi.json")).json()
    content = schema["paths"]["/api/sessions/{session_id}/replies"]["post"]["responses"]["200"][
        "content"
    ]["text/event-stream"]
    item = content["itemSchema"]
    components = schema["components"]
    sid = await new_session(http, alice)
    _, received = await _start(http, sid, {"content": "validate me"}, alice)
    assert len(received) > 3
    for event in received:
        wire = {"event": event.event, "id": event.id, "data": json.dumps(event.data)}
        jsonschema_rs.validate({**item, "components": components}, wire)
        branch = next(b for b in item["oneOf"] if b["properties"]["event"]["const"] == event.event)
        data_schema = {**branch["properties"]["data"]["contentSchema"], "components": components}
        jsonschema_rs.validate(data_schema, event.data)
    wrong_id = {"event": "delta", "id": "x", "data": "{}"}
    assert not jsonschema_rs.is_valid({**item, "components": components}, wrong_id)
