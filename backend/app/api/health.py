"""Health: `/health` (readiness: can this process reach its database?) and `/health/live`
(liveness: is the process answering at all?), both for GET and HEAD.

A liveness probe must not touch the database: a database outage would otherwise get every
healthy process restarted by its orchestrator, which cures nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.dependencies.services import ServicesDep
from app.api.errors import problem_responses
from app.api.routing import StrictQueryRoute

log = logging.getLogger(__name__)

router = APIRouter(route_class=StrictQueryRoute, tags=["health"])

HEALTH_TIMEOUT_S = 2.0


class Health(BaseModel):
    status: Literal["healthy", "unhealthy", "draining"] = Field(
        description="`draining`: the process was asked to stop and is finishing its work; "
        "a load balancer must stop sending it requests."
    )
    database: str


class Liveness(BaseModel):
    status: Literal["alive"]
    pid: int = Field(description="The answering worker process.")
    node: str = Field(description="The node's name (`NODE_NAME`, default: the host name).")


async def _ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "The database cannot be reached, or the process is draining.",
        },
        **problem_responses(422),
    },
    summary="Health check",
)
async def health(services: ServicesDep) -> JSONResponse:
    """Readiness: 200 when the database answers `SELECT 1` within 2 s; otherwise 503, never a
    hang. 503 `draining` from the moment the process is asked to stop (SIGTERM), so a load
    balancer takes it out of rotation before it stops listening."""
    if services.lifecycle.draining:
        return JSONResponse(
            {"status": "draining", "database": "not checked"},
            status_code=503,
            headers={"Retry-After": "2"},
        )
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


def _head_of(answer: Response) -> Response:
    """The GET answer's status and headers (Content-Type and Content-Length included, as HEAD
    requires), without the body."""
    head = Response(status_code=answer.status_code)
    head.raw_headers = list(answer.raw_headers)
    return head


@router.head(
    "/health",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "The database cannot be reached, or the process is draining.",
        },
        **problem_responses(422),
    },
    summary="Health check (headers only)",
)
async def health_head(services: ServicesDep) -> Response:
    """`GET /health` without the body, for probes that send HEAD."""
    return _head_of(await health(services))


@router.get(
    "/health/live", response_model=Liveness, responses=problem_responses(422), summary="Liveness"
)
async def live(services: ServicesDep) -> JSONResponse:
    """200 while the process answers; the database is not touched."""
    body = Liveness(status="alive", pid=os.getpid(), node=services.settings.node_name)
    return JSONResponse(body.model_dump())


@router.head(
    "/health/live",
    response_model=Liveness,
    responses=problem_responses(422),
    summary="Liveness (headers only)",
)
async def live_head(services: ServicesDep) -> Response:
    """`GET /health/live` without the body."""
    return _head_of(await live(services))
