"""Who is calling: the verified bearer token, the user id it resolves to, and the request's
unit of work, as ONE dependency.

FastAPI's cost per dependency is measurable (it inspects each one on every request), so the
hot path has one: `CallerDep` reads the header itself instead of stacking a bearer scheme, a
principal, a services lookup and a unit of work. `app/api/openapi.py` declares the bearer
scheme in the OpenAPI document that a security dependency would otherwise have declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.api.dependencies.services import Services, services_of
from app.api.observe import PRINCIPAL_STATE
from app.core.security import InvalidToken
from app.domain.dtos import Principal
from app.domain.ports import UnitOfWork
from app.domain.services.users import UserService


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("an Authorization: Bearer <token> header is required")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """Verify the bearer token; the principal is left on the request for its access line,
    which logs the internal user id it resolves to."""
    principal = await services_of(request).tokens.authenticate(bearer_token(request))
    setattr(request.state, PRINCIPAL_STATE, principal)
    return principal


async def get_principal(request: Request) -> Principal:
    """The verified token's principal, for routes that resolve the user themselves."""
    return await authenticate(request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller of a request, with the request's unit of work."""

    user_id: int
    uow: UnitOfWork
    services: Services


async def get_caller(request: Request) -> Caller:
    """Verify the token (before any connection is taken), then resolve the user: warm, from the
    per-process cache with no round trip; cold, looked up or provisioned. The unit of work
    holds no connection between statements, so there is nothing to close after the endpoint:
    its last statement already gave the connection back, before the response is sent."""
    services = services_of(request)
    principal = await authenticate(request)
    uow = services.new_uow()
    user_id = await UserService(uow, services.known_users).resolve(principal)
    return Caller(user_id, uow, services)


CallerDep = Annotated[Caller, Depends(get_caller)]
