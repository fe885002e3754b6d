"""`/api/users/me`: the caller's own account."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.dependencies.auth import CurrentUserId
from app.api.dependencies.database import UnitOfWorkDep
from app.api.dependencies.services import ServicesDep
from app.api.errors import problem_responses
from app.domain.dtos import UserDTO
from app.domain.services.users import UserService

router = APIRouter(prefix="/api/users", tags=["users"], responses=problem_responses(401, 422, 503))


@router.get("/me", summary="Who am I")
async def get_me(user_id: CurrentUserId, uow: UnitOfWorkDep, services: ServicesDep) -> UserDTO:
    """The account the bearer token names (provisioned on first sight) and how many sessions it
    owns. `email` mirrors the token's e-mail claim when it carries one."""
    return await UserService(uow, services.known_users).me(user_id)


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, summary="Erase my account and all its data"
)
async def delete_me(user_id: CurrentUserId, uow: UnitOfWorkDep, services: ServicesDep) -> Response:
    """Delete the account with every session, message and idempotency key it owns, in one
    statement (database cascades). The identity provider's account is not touched: a later
    request with a valid token starts a new, empty account."""
    await UserService(uow, services.known_users).erase(user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
