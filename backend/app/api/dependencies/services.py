"""The objects routes need, built once by `create_app` and reached typed (not as loose
`app.state` attributes read back with local annotations)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.lifecycle import Lifecycle
from app.core.security import TokenVerifier
from app.core.settings import Settings
from app.domain.ports import UnitOfWork
from app.domain.rules import Limits
from app.domain.services.idempotency import IdempotencyPolicy
from app.domain.services.replies import ReplyService
from app.domain.services.users import KnownUsers


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    #: A unit of work for one request (it takes a connection per statement, so nothing to close).
    new_uow: Callable[[], UnitOfWork]
    tokens: TokenVerifier
    limits: Limits
    known_users: KnownUsers
    idempotency: IdempotencyPolicy
    replies: ReplyService
    #: Draining (asked to stop): readiness fails so the load balancer takes the node out.
    lifecycle: Lifecycle


def services_of(request: Request) -> Services:
    services = request.app.state.services
    if not isinstance(services, Services):  # only an app not built by create_app gets here
        raise RuntimeError("app.state.services is not set: build the app with create_app()")
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]
