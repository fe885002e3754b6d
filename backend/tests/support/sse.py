"""A small SSE client for tests: parses `text/event-stream` from an httpx streaming response."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Event:
    event: str
    id: str
    data: Any


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or fields:
                assert "id" in fields, f"every event carries an id: {fields} {data}"
                yield Event(
                    fields.get("event", "message"), fields["id"], json.loads("\n".join(data))
                )
            fields, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


async def collect(response: httpx.Response, limit: int | None = None) -> list[Event]:
    """The stream's events, all of them or the first `limit`."""
    received: list[Event] = []
    async for event in events(response):
        received.append(event)
        if limit is not None and len(received) == limit:
            break
    return received


def text_of(received: list[Event]) -> str:
    """The deltas' text, checking that each id is the running character offset."""
    offset = None
    parts = []
    for event in received:
        if event.event == "delta":
            if offset is None:
                offset = int(event.id) - len(event.data["text"])
            offset += len(event.data["text"])
            assert event.id == str(offset), "a delta's id is the offset where its text ends"
            parts.append(event.data["text"])
    return "".join(parts)
