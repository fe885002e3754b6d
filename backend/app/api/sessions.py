"""`/api/sessions`: the caller's chat sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.dependencies.auth import CallerDep
from app.api.dependencies.pagination import ResourceId, SessionPage, next_link
from app.api.errors import problem_responses
from app.api.idempotency import IdempotencyDep
from app.api.routing import StrictQueryRoute
from app.domain.dtos import SessionCreateDTO, SessionDTO, SessionUpdateDTO
from app.domain.services.sessions import SessionService

router = APIRouter(
    route_class=StrictQueryRoute,
    prefix="/api/sessions",
    tags=["sessions"],
    responses=problem_responses(401, 422, 503),
)


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
    """Start a new chat session owned by the caller. The title is trimmed (1..500 characters).

    Send an `Idempotency-Key` to make retries safe (see the header). 409 when the caller already
    has `MAX_SESSIONS_PER_USER` sessions, or while a request with the same key is running.
    """
    caller = idempotency.caller
    return await idempotency.run(
        lambda uow: SessionService(uow, caller.services.limits).create(caller.user_id, body.title)
    )


@router.get("/", summary="List sessions")
async def list_sessions(
    request: Request,
    response: Response,
    page: SessionPage,
    caller: CallerDep,
) -> list[SessionDTO]:
    """The caller's sessions, most recently active first (`updated_at`, then `id`, descending).

    `limit` defaults to 50 (max 100). When the page is full, a `Link: <...>; rel="next"` header
    carries the cursor for the next page; `skip` is still accepted.
    """
    result = await SessionService(caller.uow).list(caller.user_id, page)
    response.headers.update(next_link(request, result.next_cursor, page.limit))
    return result.items


@router.get("/{session_id}", responses=problem_responses(404), summary="Get a session")
async def get_session(session_id: ResourceId, caller: CallerDep) -> SessionDTO:
    """One of the caller's sessions, with its exact message count."""
    return await SessionService(caller.uow).get(caller.user_id, session_id)


@router.patch(
    "/{session_id}",
    responses=problem_responses(400, 404, 413, 415),
    summary="Rename a session",
)
async def update_session(
    session_id: ResourceId, body: SessionUpdateDTO, caller: CallerDep
) -> SessionDTO:
    """Change the title. Counts as activity: the session moves to the top of the list."""
    return await SessionService(caller.uow).rename(caller.user_id, session_id, body.title)


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
