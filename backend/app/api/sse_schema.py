"""The reply stream in the OpenAPI document: each event's name, id and data schema.

A `text/event-stream` body is a sequence of events; OpenAPI (3.2, and FastAPI's own SSE routes)
describes it with `itemSchema`, the schema of one event: `event`, `id` and `data`, the data being
a JSON document with a schema of its own (`contentSchema`). Here the item is a `oneOf` with one
branch per event, so a validating client can check every event it receives.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.domain.dtos import MessageDTO

MESSAGE_REF = {"$ref": "#/components/schemas/MessageDTO"}
TOOL_CALL_REF = {"$ref": "#/components/schemas/ToolCall"}


class DeltaData(BaseModel):
    text: str = Field(description="New text; it ends at character `id` of the content.")


class ReplyErrorData(BaseModel):
    detail: str | None = Field(description="Why the reply failed (or: it was deleted).")
    message: MessageDTO | None = Field(
        default=None, description="The failed message, partial text kept (absent: deleted)."
    )


def _data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _event(name: str, id_schema: dict[str, Any], data: dict[str, Any], what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": what,
        "required": ["event", "id", "data"],
        "properties": {
            "event": {"const": name},
            "id": id_schema,
            "data": _data(data),
        },
    }


OFFSET = {"type": "string", "pattern": "^[0-9]+$"}

EVENT_ITEM_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _event("user", {"const": "user"}, MESSAGE_REF, "The saved user message (starts only)."),
        _event("message", {"const": "0"}, MESSAGE_REF, "The reply as it began: `streaming`."),
        _event("delta", OFFSET, _inline(DeltaData), "Text; `id` is where it ends."),
        _event(
            "tool_call",
            {"type": "string", "pattern": "^tool:[0-9]+$"},
            TOOL_CALL_REF,
            "One whole call of the model, after all the text; `id` is `tool:` and its index.",
        ),
        _event("done", {"const": "end"}, MESSAGE_REF, "The reply `completed` or `cancelled`."),
        _event(
            "error",
            {"type": "string", "pattern": "^(end|[0-9]+)$"},
            _inline(ReplyErrorData),
            "The reply `failed` (id `end`), or was deleted while streaming (id: an offset).",
        ),
    ]
}

EVENT_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A `text/event-stream` of reply events (see above); `itemSchema` is the "
        "schema of one event.",
        "content": {"text/event-stream": {"itemSchema": EVENT_ITEM_SCHEMA}},
    }
}


def drop_string_stream_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI gives every `text/event-stream` response a `schema: {type: string}`. Next to an
    `itemSchema` a validator reads `schema` as the whole stream (OpenAPI 3.2) and rejects every
    event list, so it goes: `itemSchema` alone describes the stream."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None and "itemSchema" in stream:
                    stream.pop("schema", None)
    return document
