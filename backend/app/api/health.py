"""`/health`: is this process able to serve, i.e. can it reach its database?"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.dependencies.services import ServicesDep
from app.api.errors import problem_responses
from app.api.routing import StrictQueryRoute

log = logging.getLogger(__name__)

router = APIRouter(route_class=StrictQueryRoute, tags=["health"])

HEALTH_TIMEOUT_S = 2.0


class Health(BaseModel):
    status: Literal["healthy", "unhealthy"]
    database: str


async def _ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "The database cannot be reached."},
        **problem_responses(422),
    },
    summary="Health check",
)
async def health(services: ServicesDep) -> JSONResponse:
    """200 when the database answers `SELECT 1` within 2 s; otherwise 503, never a hang."""
    try:
        await asyncio.wait_for(_ping(services.engine), HEALTH_TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database is "unhealthy", by definition
        log.warning("health check failed: %r", exc)
        reason = "timeout" if isinstance(exc, TimeoutError) else exc.__class__.__name__
        return JSONResponse(
            {"status": "unhealthy", "database": f"unreachable ({reason})"},
            status_code=503,
            headers={"Retry-After": "2"},
        )
    return JSONResponse({"status": "healthy", "database": "connected"})
