"""`POST /auth/dev-token`: sign in by name on a development server, for the chat page.

Mounted only with `ENVIRONMENT=development` and `AUTH_MODE=local` (`create_app` decides), so in
production, in tests and in `oidc` mode the path does not exist at all (404). The token is the
one `make token SUB=<name>` prints: same signer, same subject rules, same lifetime.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.dependencies.services import services_of
from app.api.errors import problem_responses
from app.core.security import LocalTokens
from app.core.settings import Settings
from app.domain.dtos import DevTokenDTO, DevTokenRequestDTO

router = APIRouter(tags=["development"])


def enabled(settings: Settings) -> bool:
    """Whether this app offers development sign-in."""
    return settings.environment == "development" and settings.auth_mode == "local"


@router.post(
    "/auth/dev-token",
    responses=problem_responses(400, 415, 422),
    summary="A development bearer token (development, local auth only)",
)
async def dev_token(body: DevTokenRequestDTO, request: Request) -> DevTokenDTO:
    """A bearer token for user `name`, signed with `AUTH_SECRET` exactly as `make token` signs
    it. Exists only on a development server in `local` auth mode: anyone who can reach it can
    be anyone, which is the point of a development server and why production has no such
    route."""
    settings = services_of(request).settings
    token = LocalTokens(settings).mint(body.name)
    return DevTokenDTO(access_token=token, expires_in=settings.auth_token_ttl_s)
