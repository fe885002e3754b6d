"""`/api/sessions`: the caller's chat sessions, their active branch, and forks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic.json_schema import SkipJsonSchema

from app.api.dependencies.auth import CallerDep
from app.api.dependencies.pagination import ResourceId, SessionPage, before_link, next_link
from app.api.errors import problem_responses
from app.api.idempotency import IdempotencyDep
from app.api.routing import StrictQueryRoute
from app.domain import rules
from app.domain.dtos import (
    ForkCreateDTO,
    SessionCreateDTO,
    SessionDTO,
    SessionExportDTO,
    SessionImportDTO,
    SessionUpdateDTO,
    ThreadMessageDTO,
)
from app.domain.pagination import BIGINT_MAX
from app.domain.services.branches import BranchService
from app.domain.services.sessions import SessionService
from app.domain.services.transfer import TransferService

router = APIRouter(
    route_class=StrictQueryRoute,
    prefix="/api/sessions",
    tags=["sessions"],
    responses=problem_responses(401, 422, 503),
)

#: A thread page: a branch may hold every message of a session.
THREAD_MAX_LIMIT = 1000
#: The import's path: its body limit is IMPORT_MAX_BYTES, not MAX_BODY_BYTES.
IMPORT_PATH = "/api/sessions/import"


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionDTO,
    responses=problem_responses(400, 409, 413, 415),
    summary="Create a session",
)
async def create_session(
    body: SessionCreateDTO, idempotency: IdempotencyDep
) -> SessionDTO | Response:
    """Start a new chat session owned by the caller. The title is trimmed (1..500 characters);
    `metadata` (optional) labels it, to filter the list by.

    With `expires_at` (a time in the future) it is a temporary chat: after that time it is gone
    from every route (404) and deleted with its messages by the retention sweep.

    Send an `Idempotency-Key` to make retries safe (see the header). 409 when the caller already
    has `MAX_SESSIONS_PER_USER` sessions, or while a request with the same key is running.
    """
    caller = idempotency.caller
    return await idempotency.run(
        lambda uow: SessionService(uow, caller.services.limits).create(
            caller.user_id, body.title, body.metadata, body.expires_at
        )
    )


MetadataFilter = Annotated[
    list[str],
    Query(
        max_length=rules.METADATA_MAX_KEYS,
        description="`key:value`: only sessions whose metadata has this key with this value "
        "(the value is everything after the first `:`). Repeat it (up to 16 times): every "
        "pair must match.",
        json_schema_extra={"items": {"type": "string", "pattern": rules.METADATA_FILTER_PATTERN}},
    ),
]


@router.get("/", summary="List sessions")
async def list_sessions(
    request: Request,
    response: Response,
    page: SessionPage,
    caller: CallerDep,
    metadata: MetadataFilter = [],  # noqa: B006 (FastAPI copies defaults)
    archived: Annotated[
        bool,
        Query(description="`true`: list the archived sessions (only them) instead of the others."),
    ] = False,
) -> list[SessionDTO]:
    """The caller's sessions: pinned ones first, then the most recently active (`pinned`,
    `updated_at`, then `id`, descending). Archived sessions are left out, unless
    `archived=true`, which lists only them. `metadata=key:value` (repeatable) keeps the
    sessions whose metadata holds every pair.

    `limit` defaults to 50 (max 100). When the page is full, a `Link: <...>; rel="next"` header
    carries the cursor for the next page (filters included); `skip` is still accepted. Pinning,
    unpinning or new activity moves a session in this order: a client paging meanwhile does not
    see it again, or sees it once more, at its new place.
    """
    result = await SessionService(caller.uow).list(
        caller.user_id, page, archived=archived, metadata=metadata
    )
    response.headers.update(next_link(request, result.next_cursor, page.limit))
    return result.items


@router.get("/{session_id}", responses=problem_responses(404), summary="Get a session")
async def get_session(session_id: ResourceId, caller: CallerDep) -> SessionDTO:
    """One of the caller's sessions, with its exact message count and current message."""
    return await SessionService(caller.uow).get(caller.user_id, session_id)


@router.patch(
    "/{session_id}",
    responses=problem_responses(400, 404, 413, 415),
    summary="Change a session: title, branch, metadata, archive, pin",
)
async def update_session(
    session_id: ResourceId, body: SessionUpdateDTO, caller: CallerDep
) -> SessionDTO:
    """Change any of the fields, or several, in one statement (at least one field):

    - `title`; `current_message_id` switches branch (any message of the session; 422
      otherwise): the thread shows the branch through it and new messages go under it. Either
      counts as activity: the session moves to the top of its part of the list.
    - `expires_at`: a time in the future makes it a temporary chat, `null` keeps it again;
      activity too.
    - `metadata` replaces the metadata as a whole (`{}` clears it); `archived` hides the session
      from the list (or brings it back); `pinned` lists it first. None of these is activity.
    """
    return await SessionService(caller.uow).update(
        caller.user_id,
        session_id,
        title=body.title,
        current_message_id=body.current_message_id,
        metadata=body.metadata,
        archived=body.archived,
        pinned=body.pinned,
        expiry=body.expiry,
    )


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404),
    summary="Delete a session",
)
async def delete_session(session_id: ResourceId, caller: CallerDep) -> Response:
    """Delete the session and, in the same statement (database cascade), all its messages."""
    await SessionService(caller.uow).delete(caller.user_id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{session_id}/thread",
    responses=problem_responses(404),
    summary="The active branch of a session",
)
async def get_thread(
    request: Request,
    response: Response,
    session_id: ResourceId,
    caller: CallerDep,
    limit: Annotated[
        int, Query(ge=1, le=THREAD_MAX_LIMIT, description="Messages per page, 1..1000.")
    ] = 100,
    before: Annotated[
        int | None,
        Query(
            ge=1,
            le=BIGINT_MAX,
            description="Continue towards the root: the page ends with this message's parent "
            "(the `Link` header's value).",
        ),
    ] = None,
) -> list[ThreadMessageDTO]:
    """The conversation as a client shows it: the branch from the root to the current
    message, root first, one statement whatever the session's size. Each message carries
    `parent_id` and `sibling_ids` (the messages sharing its parent, itself included, oldest
    first): "2 / 3" and the ids to switch to with `PATCH /api/sessions/{id}`.

    A page holds the newest `limit` messages of the branch (default 100, max 1000); when the
    branch goes on towards the root, a `Link: <...>; rel="next"` header continues it.
    """
    thread = await BranchService(caller.uow).thread(
        caller.user_id, session_id, before=before, limit=limit
    )
    response.headers.update(before_link(request, thread.before))
    return thread.messages


@router.post(
    "/{session_id}/fork",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionDTO,
    responses=problem_responses(400, 404, 409, 413, 415),
    summary="Fork a session",
)
async def fork_session(
    session_id: ResourceId,
    idempotency: IdempotencyDep,
    body: Annotated[ForkCreateDTO | SkipJsonSchema[None], Body()] = None,
) -> SessionDTO | Response:
    """A new session of the caller holding a copy of the branch from the root to `message_id`
    (default: the current message): new ids, same roles, contents, tokens, tool data and order,
    and the session's `metadata`; not its archived and pinned flags, its expiry, nor the
    messages' feedback (a rating is of the original reply). The copy of `message_id` is its
    current message; the original is untouched. Counts against
    `MAX_SESSIONS_PER_USER` (409 beyond); 409 too while a reply on that path still streams.
    `Idempotency-Key` makes retries safe, as for creating a session."""
    fork = body or ForkCreateDTO()
    caller = idempotency.caller
    return await idempotency.run(
        lambda uow: BranchService(uow, caller.services.limits).fork(
            caller.user_id, session_id, message_id=fork.message_id, title=fork.title
        )
    )


@router.get(
    "/{session_id}/export",
    responses=problem_responses(404),
    summary="Export a session",
)
async def export_session(session_id: ResourceId, caller: CallerDep) -> SessionExportDTO:
    """The session as one JSON document (`format` `agent-stack.session`, `version` 1): its
    title, metadata, flags and times, and every message of every branch (parents before
    children) with its `parent_id`, tool data, token counts, model and feedback. One statement.
    `POST /api/sessions/import` takes it back."""
    return await TransferService(caller.uow).export_session(caller.user_id, session_id)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionDTO,
    responses=problem_responses(400, 409, 413, 415),
    summary="Import a session",
)
async def import_session(
    body: SessionImportDTO, idempotency: IdempotencyDep
) -> SessionDTO | Response:
    """Create a new session of the caller from an exported document, or from an OpenAI-style
    `{"messages": [...]}` list (roles, `content`, `tool_calls`, `tool_call_id`: one branch, each
    message answering the previous; titled after the first user message). New ids, the same
    tree: parents and the current message are mapped to the new ids; times, token counts,
    models and feedback are kept (missing times are the import's).

    All or nothing, in one transaction. A bad item is a 422 naming its position
    (`messages[3].tool_call_id`): a parent that is not in the document, a cycle, a tool result
    whose call is not above it on its branch. More than `IMPORT_MAX_MESSAGES` messages (or
    `MAX_MESSAGES_PER_SESSION`), or a body over `IMPORT_MAX_BYTES`, is a 413. Counts against
    `MAX_SESSIONS_PER_USER` (409 beyond). `Idempotency-Key` makes retries safe.
    """
    caller = idempotency.caller
    return await idempotency.run(
        lambda uow: TransferService(uow, caller.services.limits).import_session(
            caller.user_id, body
        )
    )
