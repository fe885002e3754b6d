"""Agent replies over Server-Sent Events: start one, (re)join its stream, cancel it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema

from app.api.dependencies.auth import PrincipalDep
from app.api.dependencies.pagination import ResourceId
from app.api.dependencies.services import services_of
from app.api.errors import problem_responses
from app.api.idempotency import REPLAYED_HEADER, IdempotencyKeyHeader, fingerprint
from app.api.routing import StrictQueryRoute
from app.api.sse_schema import EVENT_STREAM_RESPONSE
from app.core import metrics
from app.domain.dtos import MessageDTO, RegenerateDTO, ReplyCreateDTO, ToolOptionsDTO
from app.domain.language_model import ToolOptions
from app.domain.reply_events import (
    LAST_EVENT_ID_MAX_CHARS,
    LAST_EVENT_ID_PATTERN,
    Position,
    ReplyEvent,
)
from app.domain.services.replies import IdempotentRequest

router = APIRouter(
    route_class=StrictQueryRoute, tags=["replies"], responses=problem_responses(401, 422, 503)
)

EVENTS_DOC = """
Events (`text/event-stream`), each with an `id` that is a position in the reply:

| event | id | data |
|---|---|---|
| `user` | `user` | the saved user message (only when a reply starts with one) |
| `message` | `0` | the assistant message as it began: `status: "streaming"`, no text |
| `delta` | `N` | `{"text": ...}`; the text ends at character `N` of the content |
| `tool_call` | `tool:I` | call `I` (from 0), whole: `{"id", "type", "function"}` |
| `done` | `end` | the message `completed` or `cancelled`, with `tokens`, `input_tokens` |
| `error` | `end` | `{"detail", "message"}`: the reply `failed`; partial text is kept |

Every final message says why it stopped (`finish_reason`) and which `model` wrote it. Tool
calls are not streamed as deltas: each `tool_call` event carries one whole call in Chat
Completions' shape (`function.arguments` is a JSON string), once the model has finished its
turn, after all the text and just before `done`, whose message then has the same `tool_calls`
and `finish_reason: "tool_calls"`. Run them, post each result as a `tool`
message (`POST /api/messages/?session_id=` with `tool_call_id`), then ask for the continuation:
`POST /api/sessions/{id}/replies` without `content`.

Reconnect with `Last-Event-ID` (or `?last_event_id=`) to
`GET /api/messages/{id}/stream`: the stream continues right after that event, no duplicate and
no gap, from any server process. Concatenating the `delta` texts gives the content exactly.
"""


# These endpoints take the verified token, not the request's unit of work: the service resolves
# the caller inside its own short unit of work, so a stream that lives for minutes pins no
# connection, and a reply's start costs one statement on one pooled connection.

LAST_EVENT_ID_DOC = (
    "The id of the last event received: `user`, an offset (decimal digits), `tool:I` or "
    "`end`; blank means from the start. Anything else is 422."
)
# Strings defaulting to "" rather than optional values: a header or a query value is never
# JSON null, and the OpenAPI document must not say it could be.
LastEventIdHeader = Annotated[
    str,
    Header(
        max_length=LAST_EVENT_ID_MAX_CHARS,
        pattern=LAST_EVENT_ID_PATTERN,
        description=LAST_EVENT_ID_DOC,
    ),
]
LastEventIdQuery = Annotated[
    str,
    Query(
        alias="last_event_id",
        max_length=LAST_EVENT_ID_MAX_CHARS,
        pattern=LAST_EVENT_ID_PATTERN,
        description="Same as the header, for clients that cannot set headers.",
    ),
]


def tool_options(body: ToolOptionsDTO | None) -> ToolOptions | None:
    if body is None or body.tools is None:
        return None
    return ToolOptions(tuple(body.tools), body.tool_choice)


def encode(event: ReplyEvent) -> bytes:
    """One event in the SSE wire format, by FastAPI's own encoder."""
    data = event.data
    payload = (
        data.model_dump_json()
        if isinstance(data, BaseModel)
        else json.dumps(
            {
                k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v
                for k, v in data.items()
            }
        )
    )
    return format_sse_event(data_str=payload, event=event.name, id=event.id)


async def sse_body(events: AsyncIterator[ReplyEvent | None]) -> AsyncIterator[bytes]:
    async for event in events:
        yield KEEPALIVE_COMMENT if event is None else encode(event)


def event_stream(
    events: AsyncIterator[ReplyEvent | None], *, replayed: bool = False
) -> EventSourceResponse:
    """The response for a reply stream.

    Built directly on `EventSourceResponse` with FastAPI's SSE encoder rather than as a generator
    endpoint: the generator form relays every event through two extra tasks and memory streams,
    which measured as most of the per-token CPU with a thousand concurrent streams. Keep-alives
    come from the hub (a quiet stream yields None every 15 s).
    """
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return EventSourceResponse(sse_body(events), headers=headers)


class EventStream(Response):
    """For OpenAPI only: these routes answer `text/event-stream`. (Declaring
    `EventSourceResponse` itself would switch FastAPI to its generator-endpoint mode.)"""

    media_type = "text/event-stream"


@router.post(
    "/api/sessions/{session_id}/replies",
    response_class=EventStream,
    responses={**EVENT_STREAM_RESPONSE, **problem_responses(400, 404, 409, 413, 415)},
    summary="Send a message and stream the agent's reply",
    description="Saves the user message under `parent_id` (default: the session's current "
    "message; `null`: a new root), creates the assistant message (`streaming`) under it and "
    "streams it; both become the current branch. To edit message M, reply with M's parent: M "
    "and its answers stay as another branch. Without `content` the reply continues the branch "
    "(after tool results): no user message, no `user` event. The model sees the branch from the "
    "reply's parent to the root, never another branch. `tools` and `tool_choice` are passed to "
    "the model for this reply. One reply at a time per session: while one streams, this "
    "answers 409 with `running_message_id`. The reply is generated independently of this "
    "connection: if the client goes away it still completes and is saved.\n\n"
    "With an `Idempotency-Key`, a retry with the same key and body joins the reply the first "
    "request started, from its start (`user`, `message`, then the text), with "
    "`Idempotent-Replayed: true`: the model is called once. The same key with another body is "
    "422; while the first request is still starting the reply, 409.\n" + EVENTS_DOC,
)
async def create_reply(
    session_id: ResourceId,
    body: ReplyCreateDTO,
    caller: PrincipalDep,
    request: Request,
    key: IdempotencyKeyHeader = None,
) -> EventSourceResponse:
    service = services_of(request).replies
    # Errors (404, 409, 422, 503) are answered here, before the first byte of the stream.
    once = IdempotentRequest(key, await fingerprint(request)) if key is not None else None
    started = await service.start(
        caller,
        session_id,
        body.content,
        parent=body.parent,
        tools=tool_options(body),
        idempotency=once,
    )
    if started.replayed:
        metrics.IDEMPOTENT_REPLAYS.labels("/api/sessions/{session_id}/replies").inc()
    events = service.events(started.reply, Position(), started.user_message)
    return event_stream(events, replayed=started.replayed)


@router.post(
    "/api/messages/{message_id}/regenerate",
    response_class=EventStream,
    responses={**EVENT_STREAM_RESPONSE, **problem_responses(400, 404, 409, 413, 415)},
    summary="Regenerate an assistant reply",
    description="A new reply to the same parent as assistant message `message_id`, streamed "
    "like `POST /api/sessions/{id}/replies` (without the `user` event), resumable and "
    "cancellable the same way. The old reply stays as another branch (its `sibling_ids` in the "
    "thread); the new one becomes current. 409 while another reply of the session streams, for "
    "a message that is not an assistant's or answers nothing, or when the session is full. "
    "Send `tools` again if the reply may call them.\n\n"
    "With an `Idempotency-Key`, a retry with the same key and body joins the reply the first "
    "request started, from its start, with `Idempotent-Replayed: true`: one new reply, one "
    "model call. The same key with another body is 422; while the first request is still "
    "starting the reply, 409.\n" + EVENTS_DOC,
)
async def regenerate(
    message_id: ResourceId,
    caller: PrincipalDep,
    request: Request,
    body: Annotated[RegenerateDTO | SkipJsonSchema[None], Body()] = None,
    key: IdempotencyKeyHeader = None,
) -> EventSourceResponse:
    service = services_of(request).replies
    once = IdempotentRequest(key, await fingerprint(request)) if key is not None else None
    started = await service.regenerate(
        caller, message_id, tools=tool_options(body), idempotency=once
    )
    if started.replayed:
        metrics.IDEMPOTENT_REPLAYS.labels("/api/messages/{message_id}/regenerate").inc()
    return event_stream(service.events(started.reply, Position()), replayed=started.replayed)


@router.get(
    "/api/messages/{message_id}/stream",
    response_class=EventStream,
    responses={**EVENT_STREAM_RESPONSE, **problem_responses(404, 409)},
    summary="Join or resume a reply's stream",
    description="Live while the reply streams (from any server process), a replay once it "
    "has ended; either way the stream closes after the final event. A message that is not an "
    "assistant reply has no stream: 409.\n" + EVENTS_DOC,
)
async def stream_message(
    message_id: ResourceId,
    caller: PrincipalDep,
    request: Request,
    last_event_id: LastEventIdHeader = "",
    last_event_id_query: LastEventIdQuery = "",
) -> EventSourceResponse:
    service = services_of(request).replies
    reply = await service.find_reply(caller, message_id)  # foreign: 404 whatever the position
    after = Position.parse(last_event_id or last_event_id_query or None)
    return event_stream(service.events(reply, after))


@router.post(
    "/api/messages/{message_id}/cancel",
    responses=problem_responses(404, 409),
    summary="Cancel a streaming reply",
)
async def cancel_reply(
    message_id: ResourceId, caller: PrincipalDep, request: Request
) -> MessageDTO:
    """Stops generation (the model call is closed) in whichever process runs it and answers
    with the message: `cancelled`, its partial text kept. Cancelling a cancelled reply answers
    it again; a reply that already completed or failed answers 409."""
    return await services_of(request).replies.cancel(caller, message_id)
