"""The chat page's HTTP side: `/` and its assets under a same-origin policy, `/config.json`, and
`POST /auth/dev-token`, which exists only on a development server in `local` auth mode."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings import Settings
from app.main import create_app

PageClient = Callable[..., AsyncIterator[httpx.AsyncClient]]


@pytest.fixture
def page_client(settings: Settings, engine: AsyncEngine) -> Callable[..., httpx.AsyncClient]:
    """`page_client(environment="development")`: a client of an app built with those settings."""

    def make(**overrides: Any) -> httpx.AsyncClient:
        app = create_app(settings.model_copy(update=overrides), engine=engine)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    return make


async def test_the_page_and_its_assets_are_same_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert "/static/app/js/main.js" in urls
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    assert "<script>" not in page.text  # no inline script: the policy would block it anyway
    assets = [await client.get(path) for path in ("/static/app/js/main.js", "/config.json")]
    for response in (page, *assets):
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'; connect-src 'self';"), csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    script = await client.get("/static/app/js/main.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))


async def test_the_api_keeps_its_own_headers(client: httpx.AsyncClient) -> None:
    """The page's policy is the page's: the docs (inline script) and the API are untouched."""
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "content-security-policy" not in docs.headers


async def test_development_sign_in_mints_the_make_token_token(
    page_client: Callable[..., httpx.AsyncClient],
) -> None:
    async with page_client(environment="development") as client:
        config = (await client.get("/config.json")).json()
        assert config == {"auth_mode": "local", "dev_sign_in": True, "oidc": None}
        answer = await client.post("/auth/dev-token", json={"name": "dev alice"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 86400
        me = await client.get(
            "/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.status_code == 200
        assert me.json()["subject"] == "dev alice"


@pytest.mark.parametrize("name", ["", "   ", "a\u0000b", "x" * 256])
async def test_development_sign_in_refuses_a_bad_name(
    page_client: Callable[..., httpx.AsyncClient], name: str
) -> None:
    async with page_client(environment="development") as client:
        answer = await client.post("/auth/dev-token", json={"name": name})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"environment": "production", "allow_local_auth_in_production": True},
        {"environment": "test"},
        {
            "environment": "development",
            "auth_mode": "oidc",
            "oidc_issuer": "https://issuer.example/",
            "oidc_audience": "https://api.example",
        },
    ],
    ids=["production", "test", "oidc"],
)
async def test_no_development_sign_in_elsewhere(
    page_client: Callable[..., httpx.AsyncClient], overrides: dict[str, Any]
) -> None:
    async with page_client(**overrides) as client:
        answer = await client.post("/auth/dev-token", json={"name": "mallory"})
        config = (await client.get("/config.json")).json()
    assert answer.status_code == 404
    assert config["dev_sign_in"] is False
    assert config["oidc"] is None  # oidc without OIDC_CLIENT_ID: the page cannot sign in
