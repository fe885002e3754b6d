"""The request's unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends

from app.api.dependencies.services import ServicesDep
from app.domain.ports import UnitOfWork


async def get_uow(services: ServicesDep) -> AsyncIterator[UnitOfWork]:
    """One unit of work per request; its connection is taken at the first statement."""
    async with services.uow_factory() as uow:
        yield uow


# scope="function": the connection goes back to the pool when the endpoint returns, before the
# response is sent; with the default, a client's next request could arrive while the previous
# one still held its connection, forcing the pool to open another.
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
