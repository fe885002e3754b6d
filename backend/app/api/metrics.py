"""`GET /metrics`: Prometheus exposition text, for every worker process at once.

Guarded by `METRICS_TOKEN` (a bearer token of its own, not a user's JWT) when one is set; open
otherwise, which production allows only when `METRICS_PUBLIC=true` says so explicitly.
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response

from app.api.dependencies.services import ServicesDep
from app.api.errors import problem
from app.core import metrics

router = APIRouter(tags=["operations"])


def _authorised(request: Request, token: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    if token is not None and not _authorised(request, token.get_secret_value()):
        return problem(
            401,
            "Unauthorized",
            "/metrics needs Authorization: Bearer <METRICS_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    # Reading the workers' sample files is file I/O: off the event loop.
    return Response(await asyncio.to_thread(metrics.render), media_type=metrics.CONTENT_TYPE)
