"""Structured logs: one JSON access line per request, reply start and end lines, request ids,
and nothing secret, ever: a whole session of requests and a reply is captured and searched."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.core.logging import log_handler
from app.core.settings import Settings
from tests.conftest import AUTH_SECRET

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = log_handler("json", node_name="node-a", stream=stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_a_session_of_requests_logs_structured_lines_and_no_secret(
    client: httpx.AsyncClient, auth: Auth, settings: Settings, captured: io.StringIO
) -> None:
    headers = auth("log-alice")
    token = headers["Authorization"].removeprefix("Bearer ")
    content = "the-private-words-of-alice-7f3a"
    created = await client.post(
        "/api/sessions/", json={"title": "secret title 91c2"}, headers=headers
    )
    sid = created.json()["id"]
    await client.post(
        f"/api/messages/?session_id={sid}",
        json={"role": "user", "content": content},
        headers={**headers, "X-Request-ID": "req-given-1"},
    )
    reply = await client.post(
        f"/api/sessions/{sid}/replies", json={"content": content}, headers=headers
    )
    assert reply.status_code == 200
    assert "event: done" in reply.text
    await client.get(f"/api/messages/?session_id={sid}", headers=headers)
    await client.get("/api/sessions/", headers={"Authorization": "Bearer not-a-token"})

    raw = captured.getvalue()
    lines = _lines(captured)  # every line is a JSON object
    assert lines
    for secret in (token, content, AUTH_SECRET, settings.auth_secret, "secret title 91c2"):
        assert secret not in raw

    access = [line for line in lines if line.get("event") == "http.request"]
    create = next(line for line in access if line["method"] == "POST" and line["status"] == 201
                  and line["route"] == "/api/sessions/")  # fmt: skip
    assert create["request_id"] == created.headers["x-request-id"]
    assert isinstance(create["user_id"], int)
    assert create["duration_ms"] >= 0
    assert create["node"] == "node-a"
    assert create["level"] == "INFO"
    given = next(line for line in access if line["request_id"] == "req-given-1")
    assert given["route"] == "/api/messages/"
    refused = next(line for line in access if line["status"] == 401)
    assert refused["user_id"] is None
    stream = next(line for line in access if line["route"] == "/api/sessions/{session_id}/replies")
    assert stream["stream"] is True

    start = next(line for line in lines if line.get("event") == "reply.start")
    end = next(line for line in lines if line.get("event") == "reply.end")
    assert start["message_id"] == end["message_id"]
    assert end["model"] == "simulated"
    assert end["outcome"] == "completed"
    assert end["output_tokens"] > 0
    assert end["input_tokens"] > 0
    assert end["time_to_first_token_ms"] is not None
    assert start["request_id"] == reply.headers["x-request-id"]
