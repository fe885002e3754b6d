"""The chat page: `GET /`, its assets under `/static/app`, and `GET /config.json`.

Plain HTML, CSS and ES modules from `app/web/static` (no build step), served with a
Content-Security-Policy that allows this origin only: no inline script, nothing from a CDN. In
`oidc` mode the provider's origin is added to `connect-src`, because the page fetches the
issuer's discovery document and exchanges its authorization code there (a public client with
PKCE: the browser talks to the provider itself).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.api import dev_auth
from app.core.settings import Settings

STATIC_URL = "/static/app"
ASSETS = files("app.web") / "static"


def security_headers(settings: Settings) -> dict[str, str]:
    """What every response of the page carries."""
    connect = ["'self'"]
    if settings.auth_mode == "oidc" and settings.oidc_issuer:
        issuer = urlsplit(settings.oidc_issuer)
        connect.append(f"{issuer.scheme}://{issuer.netloc}")
    policy = (
        "default-src 'self'; "
        f"connect-src {' '.join(connect)}; "
        "img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page needs to know to sign in (it cannot read inline script under its CSP)."""
    oidc = None
    if settings.auth_mode == "oidc" and settings.oidc_client_id:
        oidc = {
            "issuer": settings.oidc_issuer,
            "client_id": settings.oidc_client_id,
            "audience": settings.oidc_audience,
        }
    return {
        "auth_mode": settings.auth_mode,
        "dev_sign_in": dev_auth.enabled(settings),
        "oidc": oidc,
    }


class PageAssets(StaticFiles):
    """The page's files, with its security headers; revalidated on every load (ETag), so a
    new version of the page is never mixed with cached modules of the old one."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(directory=str(ASSETS))
        self._headers = {**headers, "Cache-Control": "no-cache"}

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self._headers)
        return response


def install(app: FastAPI, settings: Settings) -> None:
    headers = security_headers(settings)
    config = page_config(settings)
    app.mount(STATIC_URL, PageAssets(headers), name="page-assets")
    if dev_auth.enabled(settings):
        app.include_router(dev_auth.router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The chat page."""
        return FileResponse(
            str(ASSETS / "index.html"), headers={**headers, "Cache-Control": "no-cache"}
        )

    @app.get("/config.json", include_in_schema=False)
    async def page_settings() -> JSONResponse:
        """How the page signs in: the auth mode, and the OIDC issuer and client id if any."""
        return JSONResponse(config, headers={**headers, "Cache-Control": "no-cache"})
