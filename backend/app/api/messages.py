"""`/api/messages`: messages of the caller's sessions, and feedback on replies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.api.dependencies.auth import CallerDep
from app.api.dependencies.pagination import Digits, MessagePage, ResourceId, next_link
from app.api.errors import problem_responses
from app.api.idempotency import IdempotencyDep
from app.api.routing import StrictQueryRoute
from app.domain.dtos import FeedbackDTO, FeedbackInDTO, MessageCreateDTO, MessageDTO
from app.domain.pagination import BIGINT_MAX
from app.domain.services.feedback import FeedbackService
from app.domain.services.messages import MessageService

router = APIRouter(
    route_class=StrictQueryRoute,
    prefix="/api/messages",
    tags=["messages"],
    responses=problem_responses(401, 422, 503),
)

SessionIdQuery = Annotated[
    int, Query(ge=1, le=BIGINT_MAX, description="The session the messages belong to."), Digits
]


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageDTO,
    responses=problem_responses(400, 404, 409, 413, 415),
    summary="Add a message",
)
async def create_message(
    session_id: SessionIdQuery,
    body: MessageCreateDTO,
    idempotency: IdempotencyDep,
) -> MessageDTO | Response:
    """Append a message to one of the caller's sessions, under its current message (the
    message's `parent_id`); it becomes the current message.

    In the same transaction the session's `message_count` grows by one and the session moves to
    the top of the caller's list. Tool use, in Chat Completions' shape: an assistant message may
    carry `tool_calls` (its `content` may then be left out); a `tool` message answers one of
    them with `tool_call_id`, which must be a call of an assistant message on the current
    branch without a result there yet (422 otherwise). Send an `Idempotency-Key` to make
    retries safe (see the header). 409 when the session already holds
    `MAX_MESSAGES_PER_SESSION` messages, or while a request with the same key is running.
    """
    caller = idempotency.caller
    return await idempotency.run(
        lambda uow: MessageService(uow, caller.services.limits).add(
            caller.user_id,
            session_id,
            body.role,
            body.content,
            body.tokens,
            tool_calls=body.tool_calls,
            tool_call_id=body.tool_call_id,
        )
    )


@router.get("/", responses=problem_responses(404), summary="List a session's messages")
async def list_messages(
    request: Request,
    response: Response,
    session_id: SessionIdQuery,
    page: MessagePage,
    caller: CallerDep,
) -> list[MessageDTO]:
    """Every message of the session, whatever its branch, chronological (`created_at`, then
    `id`), each with its `parent_id`. `limit` defaults to 100 (max 100); a full page carries a
    `Link: <...>; rel="next"` header. `GET /api/sessions/{id}/thread` shows one branch."""
    result = await MessageService(caller.uow).list(caller.user_id, session_id, page)
    response.headers.update(next_link(request, result.next_cursor, page.limit))
    return result.items


@router.get("/{message_id}", responses=problem_responses(404), summary="Get a message")
async def get_message(message_id: ResourceId, caller: CallerDep) -> MessageDTO:
    return await MessageService(caller.uow).get(caller.user_id, message_id)


@router.put(
    "/{message_id}/feedback",
    responses=problem_responses(400, 404, 413, 415),
    summary="Rate an assistant message",
)
async def put_feedback(
    message_id: ResourceId, body: FeedbackInDTO, caller: CallerDep
) -> FeedbackDTO:
    """Thumbs `up` or `down` on an assistant message of the caller's, with an optional
    `comment` (at most 2,000 characters), replacing any earlier feedback; answers it with its
    time. The message shows it as `feedback` wherever it appears. 422 on any other role."""
    return await FeedbackService(caller.uow).give(caller.user_id, message_id, body)


@router.delete(
    "/{message_id}/feedback",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
    summary="Remove the feedback on an assistant message",
)
async def delete_feedback(message_id: ResourceId, caller: CallerDep) -> Response:
    """The message's `feedback` becomes null. Idempotent: 204 also when it had none (422 on a
    message of another role, which never has any)."""
    await FeedbackService(caller.uow).remove(caller.user_id, message_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
