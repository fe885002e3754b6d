"""The events of a reply stream and their ids.

Ids are positions in the assistant message, so they mean the same thing in every server process
and on every reconnect:

- `user`: the saved user message (only on the stream that starts a reply);
- `0`: the assistant message as it began (`streaming`, no text yet);
- `N`: a `delta` whose text ends at character N of the message's content;
- `tool:I`: the reply's tool call number I (from 0), sent complete once the model has finished,
  after all the text;
- `end`: the final event (`done`, or `error` for a failed reply).

`Last-Event-ID: N` therefore means "I have the first N characters": the stream continues with
the text after them, whatever chunks it was first sent in; `tool:I` means "I have all the text
and the calls up to I".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.domain.dtos import MessageDTO, ToolCall
from app.domain.errors import InvalidInput

USER_ID = "user"
START_ID = "0"
END_ID = "end"
TOOL_PREFIX = "tool:"
MAX_OFFSET = 99_999_999
MAX_CALL_INDEX = 9_999
#: Every id a client may send back: blank (from the start), `user`, `end`, an offset of at most
#: eight decimal digits, or `tool:` and a call's index of at most four. What the OpenAPI
#: document states, and exactly what `parse` takes.
LAST_EVENT_ID_PATTERN = r"^(user|end|[0-9]{1,8}|tool:[0-9]{1,4})?$"
LAST_EVENT_ID_MAX_CHARS = 9


@dataclass(frozen=True, slots=True)
class Position:
    """Where a (re)joining client stands. `offset` None: before the start event.
    `calls_seen` set: after all the text and that many tool calls."""

    offset: int | None = None
    ended: bool = False
    calls_seen: int | None = None

    @classmethod
    def parse(cls, last_event_id: str | None) -> Position:
        if last_event_id is None or last_event_id.strip() in {"", USER_ID}:
            return cls()
        value = last_event_id.strip()
        if value == END_ID:
            return cls(ended=True)
        if value.startswith(TOOL_PREFIX):
            index = value.removeprefix(TOOL_PREFIX)
            if index.isascii() and index.isdigit() and len(index) <= len(str(MAX_CALL_INDEX)):
                return cls(calls_seen=int(index) + 1)
        if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_OFFSET)):
            raise InvalidInput(
                f"Last-Event-ID must be an id this stream sent ('user', a character offset, "
                f"'tool:N' or 'end'), not {value[:40]!r}"
            )
        return cls(offset=int(value))


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """One server-sent event: `name` is the SSE event type, `id` its resumable position."""

    name: Literal["user", "message", "delta", "tool_call", "done", "error"]
    id: str
    data: MessageDTO | ToolCall | dict[str, object]


def user_event(message: MessageDTO) -> ReplyEvent:
    return ReplyEvent("user", USER_ID, message)


def start_event(reply: MessageDTO) -> ReplyEvent:
    """The reply as it began, whatever it has become since: replays look like live runs."""
    began = reply.model_copy(
        update={
            "content": "",
            "status": "streaming",
            "tokens": 0,
            "input_tokens": 0,
            "error": None,
            "tool_calls": None,
            "finish_reason": None,
            "model": None,
        }
    )
    return ReplyEvent("message", START_ID, began)


def delta_event(text: str, end_offset: int) -> ReplyEvent:
    return ReplyEvent("delta", str(end_offset), {"text": text})


def tool_call_event(call: ToolCall, index: int) -> ReplyEvent:
    return ReplyEvent("tool_call", f"{TOOL_PREFIX}{index}", call)


def final_event(reply: MessageDTO) -> ReplyEvent:
    if reply.status == "failed":
        return ReplyEvent("error", END_ID, {"detail": reply.error, "message": reply})
    return ReplyEvent("done", END_ID, reply)


def gone_event(offset: int) -> ReplyEvent:
    # Not `end`: there is no final state to promise; a reconnect will answer 404.
    return ReplyEvent("error", str(offset), {"detail": "the message was deleted"})
