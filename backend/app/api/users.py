"""`/api/users/me`: the caller's own account."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.dependencies.auth import CallerDep
from app.api.errors import problem_responses
from app.api.routing import StrictQueryRoute
from app.domain.dtos import UsageDTO, UsageGrouping, UserDTO
from app.domain.services.transfer import TransferService
from app.domain.services.usage import UsageService, parse_moment
from app.domain.services.users import UserService

NDJSON = "application/x-ndjson"


def _moment_schema(schema: dict[str, Any]) -> None:
    """`from` and `to` are strings holding an ISO 8601 date or date-time (never null: leave
    the parameter out instead)."""
    schema.pop("anyOf", None)
    schema.pop("default", None)
    schema.update(type="string", maxLength=40, anyOf=[{"format": "date"}, {"format": "date-time"}])


router = APIRouter(
    route_class=StrictQueryRoute,
    prefix="/api/users",
    tags=["users"],
    responses=problem_responses(401, 422, 503),
)


@router.get("/me", summary="Who am I")
async def get_me(caller: CallerDep) -> UserDTO:
    """The account the bearer token names (provisioned on first sight) and how many sessions it
    owns. `email` mirrors the token's e-mail claim when it carries one."""
    return await UserService(caller.uow, caller.services.known_users).me(caller.user_id)


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, summary="Erase my account and all its data"
)
async def delete_me(caller: CallerDep) -> Response:
    """Delete the account with every session, message, idempotency key and usage record it
    owns, in one transaction. The identity provider's account is not touched: a later request
    with a valid token starts a new, empty account."""
    await UserService(caller.uow, caller.services.known_users).erase(caller.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/usage", summary="My token usage", response_model_by_alias=True)
async def get_my_usage(
    caller: CallerDep,
    start: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=40,
            json_schema_extra=_moment_schema,
            description="Start of the period (included): a date (its first instant, UTC) or a "
            "date-time (without a zone: UTC). Default: 30 days before `to`.",
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            max_length=40,
            json_schema_extra=_moment_schema,
            description="End of the period (excluded): a date means the end of that day (UTC), "
            "so `to=2026-11-30` includes the 30th. Default: now.",
        ),
    ] = None,
    group_by: Annotated[
        UsageGrouping, Query(description="`day` (UTC), `model` or `session`.")
    ] = "day",
) -> UsageDTO:
    """Input and output tokens and the number of replies the service generated for the
    caller in the period (by the time each started), in total and by group. A reply counts once
    it has ended, and keeps counting after its conversation is deleted or expires: usage is a
    ledger. Messages posted by clients, a fork's copies and imports are not counted. `from`
    must come before `to` and the period span at most 366 days (422 otherwise)."""
    return await UsageService(caller.uow).report(
        caller.user_id, parse_moment(start, "from"), parse_moment(end, "to"), group_by
    )


@router.get(
    "/me/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One exported session per line (`GET /api/sessions/{id}/export`'s "
            "document), by session id.",
            "content": {NDJSON: {"schema": {"$ref": "#/components/schemas/SessionExportDTO"}}},
        }
    },
    summary="Export all my sessions",
)
async def export_me(caller: CallerDep) -> StreamingResponse:
    """Every session of the caller as NDJSON (`application/x-ndjson`), streamed: sessions are
    read in small batches by id, each batch one short statement whose connection is returned
    before its lines are sent, so memory and connections stay constant however many sessions
    there are. Sessions created or deleted during the export may or may not appear."""
    lines = TransferService(caller.uow).export_all(caller.user_id)
    return StreamingResponse(lines, media_type=NDJSON)
