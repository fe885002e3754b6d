"""Helpers shared by the reply tests."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from app.domain.language_model import PromptMessage
from app.llm.simulated import simulated_text

Headers = dict[str, str]


async def new_session(client: httpx.AsyncClient, headers: Headers) -> int:
    response = await client.post("/api/sessions/", json={"title": "chat"}, headers=headers)
    assert response.status_code == 201, response.text
    session_id: int = response.json()["id"]
    return session_id


def expected_reply(prompt: str, tokens: int) -> str:
    """What the simulated model answers to `prompt` as a session's first message."""
    return simulated_text([PromptMessage("user", prompt)], tokens)


def reply_stream(
    client: httpx.AsyncClient, session_id: int, content: str, headers: Headers
) -> AbstractAsyncContextManager[httpx.Response]:
    """Start a reply and hold its stream: `POST /api/sessions/{id}/replies`, streamed."""
    return client.stream(
        "POST", f"/api/sessions/{session_id}/replies", json={"content": content}, headers=headers
    )


async def get_message(client: httpx.AsyncClient, message_id: int, headers: Headers) -> Any:
    response = await client.get(f"/api/messages/{message_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_until_ended(
    client: httpx.AsyncClient, message_id: int, headers: Headers, timeout_s: float = 20
) -> Any:
    """Poll until the message leaves `streaming` (a bounded wait, not a timing assertion)."""
    for _ in range(int(timeout_s / 0.02)):
        message = await get_message(client, message_id, headers)
        if message["status"] != "streaming":
            return message
        await asyncio.sleep(0.02)
    raise AssertionError(f"message {message_id} still streaming after {timeout_s} s")
