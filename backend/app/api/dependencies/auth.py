"""Who is calling: the verified bearer token, and the user id it resolves to."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.dependencies.database import UnitOfWorkDep
from app.api.dependencies.services import ServicesDep
from app.api.observe import PRINCIPAL_STATE
from app.core.security import InvalidToken
from app.domain.dtos import Principal
from app.domain.services.users import UserService

_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT: `make token SUB=alice` mints one for local development.",
)


async def get_principal(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("an Authorization: Bearer <token> header is required")
    principal = await services.tokens.authenticate(credentials.credentials)
    # For the access line, which logs the internal user id this principal resolves to.
    setattr(request.state, PRINCIPAL_STATE, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_current_user_id(
    principal: PrincipalDep, uow: UnitOfWorkDep, services: ServicesDep
) -> int:
    """Warm: from the per-process cache, no round trip. Cold: looked up or provisioned."""
    return await UserService(uow, services.known_users).resolve(principal)


CurrentUserId = Annotated[int, Depends(get_current_user_id)]
