"""Signing in with an OIDC provider: Authorization Code with PKCE (S256), as a public client,
against a local provider (tests/support/oidc_provider.py) on another origin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from playwright.async_api import Page, expect

from bench.support.servers import Server, uvicorn_server
from tests.browser.conftest import server_env
from tests.support.fake_llm import FakeChatServer, Script
from tests.support.oidc_provider import AUDIENCE, FakeProvider

CLIENT_ID = "agent-stack-chat"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
async def app_server(
    migrated_url: str, llm: FakeChatServer, provider: FakeProvider
) -> AsyncIterator[Server]:
    """This module's server: `oidc` mode, the page a client of `provider`."""
    env = server_env(
        migrated_url,
        llm,
        AUTH_MODE="oidc",
        OIDC_ISSUER=provider.issuer,
        OIDC_AUDIENCE=AUDIENCE,
        OIDC_CLIENT_ID=CLIENT_ID,
    )
    async with uvicorn_server(
        "oidc-page", "app.main:create_served_app", env=env, ready_path="/health"
    ) as server:
        yield server


async def test_sign_in_with_pkce(
    page: Page, provider: FakeProvider, llm: FakeChatServer, app_server: Server
) -> None:
    llm.scripts.append(Script(chunks=["Signed in and answering."]))
    provider.login_subject = "oidc|pkce-user"
    await page.goto("/")
    await expect(page.get_by_label("Your name")).to_be_hidden()  # no development sign-in
    authorize_requests: list[str] = []
    page.on(
        "request",
        lambda request: (
            authorize_requests.append(request.url) if "/authorize" in request.url else None
        ),
    )
    await page.get_by_role("button", name="Sign in").click()

    prompt = page.get_by_label("Message", exact=True)
    await prompt.wait_for()
    assert page.url == f"{app_server.url}/"  # the single-use code is gone from the address
    (authorize,) = authorize_requests
    assert "code_challenge_method=S256" in authorize
    assert f"client_id={CLIENT_ID}" in authorize
    assert "code_challenge=" in authorize
    assert "state=" in authorize
    assert provider.hits["/oauth/token"] == 1
    assert provider.refusals == []
    await expect(page.locator("#who")).to_have_text("Signed in as oidc|pkce-user")

    # The provider's token is what the API accepts: a chat works.
    await prompt.fill("Hello over OIDC")
    await prompt.press("Enter")
    await expect(page.locator("li.message.role-assistant .body")).to_have_text(
        "Signed in and answering."
    )
    assert await page.evaluate("document.cookie") == ""  # the token is in no cookie
    assert await page.evaluate("sessionStorage.getItem('agent-stack.token')") is not None


async def test_an_answer_not_matching_the_request_is_refused(
    page: Page, provider: FakeProvider
) -> None:
    before = provider.hits["/oauth/token"]
    await page.goto("/?code=stolen-code&state=not-ours")
    await expect(page.locator("#signin-error")).to_contain_text("does not match")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert provider.hits["/oauth/token"] == before  # the code was never sent anywhere
    assert "code=" not in page.url


async def test_the_policy_allows_the_provider_and_no_development_sign_in(
    app_server: Server, provider: FakeProvider
) -> None:
    async with httpx.AsyncClient(base_url=app_server.url) as client:
        page = await client.get("/")
        config = (await client.get("/config.json")).json()
        dev = await client.post("/auth/dev-token", json={"name": "mallory"})
    csp = page.headers["content-security-policy"]
    assert f"connect-src 'self' {provider.issuer.rstrip('/')}" in csp
    assert config == {
        "auth_mode": "oidc",
        "dev_sign_in": False,
        "oidc": {"issuer": provider.issuer, "client_id": CLIENT_ID, "audience": AUDIENCE},
    }
    assert dev.status_code == 404
