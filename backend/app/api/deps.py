"""Dependencies shared by the routers, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.security import InvalidToken, TokenVerifier
from app.domain.dtos import Principal
from app.domain.pagination import BIGINT_MAX, CURSOR_PATTERN, Cursor, PageRequest
from app.domain.ports import UnitOfWork
from app.domain.rules import Limits
from app.domain.services.users import UserService
from app.persistence.unit_of_work import SqlUnitOfWork

MAX_SKIP = 10_000

_bearer = HTTPBearer(
    auto_error=False,
    description="A JWT: `make token SUB=alice` mints one for local development.",
)


_DECLARED_QUERY: dict[str, frozenset[str]] = {}


def _declared_query(route: APIRoute) -> frozenset[str]:
    """The query parameters a route reads, its dependencies' included: worked out once per
    route (keyed by its operation id; APIRoute is not hashable), not once per request."""
    names = _DECLARED_QUERY.get(route.unique_id)
    if names is None:
        names = _DECLARED_QUERY[route.unique_id] = frozenset(_query_names(route.dependant))
    return names


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters the route does not declare, as bodies refuse unknown fields: a
    typo such as `?limt=5` must not be silently ignored."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    declared = _declared_query(route)
    unknown = [name for name in request.query_params if name not in declared]
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown parameter"}
                for name in unknown
            ]
        )


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """One database session per request; services commit, closing rolls back anything else."""
    async with request.app.state.session_factory() as session:
        yield SqlUnitOfWork(session)


# scope="function": the session closes (its connection back in the pool) when the endpoint
# returns, before the response is sent; with the default, a client's next request could arrive
# while the previous one still held its connection, forcing the pool to open another.
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("an Authorization: Bearer <token> header is required")
    verifier: TokenVerifier = request.app.state.tokens
    return await verifier.authenticate(credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_current_user_id(principal: PrincipalDep, uow: UnitOfWorkDep) -> int:
    return await UserService(uow).resolve(principal)


CurrentUserId = Annotated[int, Depends(get_current_user_id)]


async def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


LimitsDep = Annotated[Limits, Depends(get_limits)]

ResourceId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="A positive BIGINT id.")]


def page_request(default_limit: int) -> Callable[..., Awaitable[PageRequest]]:
    """A dependency reading `limit`, `skip` and `after` with this resource's default limit."""

    async def dependency(
        limit: Annotated[
            int, Query(ge=1, le=100, description="Page size, 1..100.")
        ] = default_limit,
        skip: Annotated[
            int,
            Query(
                ge=0,
                le=MAX_SKIP,
                description="Rows to skip (kept for compatibility; prefer `after`).",
            ),
        ] = 0,
        after: Annotated[
            str | None,
            Query(
                max_length=40,
                pattern=CURSOR_PATTERN,
                description="Opaque cursor from the previous page's Link rel=next header.",
            ),
        ] = None,
    ) -> PageRequest:
        return PageRequest(
            limit=limit, skip=skip, after=Cursor.decode(after) if after is not None else None
        )

    return dependency


def next_link(request: Request, cursor: Cursor | None, limit: int) -> dict[str, str]:
    """An RFC 8288 `Link` header for the next page, or no header on the last page."""
    if cursor is None:
        return {}
    params = {k: v for k, v in request.query_params.items() if k not in {"after", "skip"}}
    params["after"] = cursor.encode()
    params["limit"] = str(limit)
    url = request.url.replace_query_params(**params)
    return {"Link": f'<{url}>; rel="next"'}


SessionPage = Annotated[PageRequest, Depends(page_request(50))]
MessagePage = Annotated[PageRequest, Depends(page_request(100))]
