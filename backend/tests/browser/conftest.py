"""The chat page in a real headless Chromium (Debian's `chromium` package, driven by Playwright),
against real uvicorn servers and the suite's PostgreSQL.

One browser and one development server (with a local Chat Completions server as its model)
for this package (stopped before other packages run), a fresh browser context
per test. Each test leaves a screenshot in
`backend/.screenshots/` (git-ignored). Without `/usr/bin/chromium` these tests fail rather than
skip: `make browser-deps` installs it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright
from pydantic import SecretStr

from bench.support.servers import Server, uvicorn_server
from tests.conftest import AUTH_SECRET
from tests.support.fake_llm import FakeChatServer, settings_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".screenshots"
#: Playwright's waits: generous (a shared machine), well under the per-test timeout.
WAIT_MS = 15_000


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat at start-up
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


@pytest.fixture(scope="package")
async def llm() -> AsyncIterator[FakeChatServer]:
    """The model the page's server talks to: scripted per test (`llm.scripts.append(...)`)."""
    server = FakeChatServer()
    await server.start()
    yield server
    await server.stop()


def server_env(migrated_url: str, llm: FakeChatServer, **overrides: str) -> dict[str, str]:
    """Environment of a development server on the suite's database, its model `llm`."""
    env = {
        "ENVIRONMENT": "development",
        "DATABASE_URL": migrated_url,
        "AUTH_MODE": "local",
        "AUTH_SECRET": AUTH_SECRET,
        "LOG_LEVEL": "WARNING",
        "REPLY_FLUSH_MS": "50",
        "REPLY_COALESCE_MS": "20",
        "REPLY_SHUTDOWN_GRACE_S": "0",
    }
    for name, value in settings_for(llm).items():
        env[name.upper()] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    env.update(overrides)
    return env


@pytest.fixture(autouse=True)
def _unscripted_model(llm: FakeChatServer) -> None:
    """Each test scripts its own replies: nothing left over from the one before."""
    llm.scripts.clear()


@pytest.fixture(scope="package")
async def app_server(migrated_url: str, llm: FakeChatServer) -> AsyncIterator[Server]:
    """A development server (dev sign-in on), shared by the tests: each signs in as a user of
    its own, so they never see each other's chats."""
    env = server_env(migrated_url, llm)
    async with uvicorn_server(
        "page", "app.main:create_served_app", env=env, ready_path="/health"
    ) as server:
        yield server


@pytest.fixture
async def api(
    app_server: Server, auth: Callable[[str], dict[str, str]]
) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """`api("alice")`: an HTTP client of the page's server, signed in as alice."""
    clients: list[httpx.AsyncClient] = []

    def client(name: str) -> httpx.AsyncClient:
        made = httpx.AsyncClient(base_url=app_server.url, headers=auth(name), timeout=20)
        clients.append(made)
        return made

    yield client
    for made in clients:
        await made.aclose()


@pytest.fixture
def user() -> str:
    """A name nobody else in the run signs in with."""
    return f"user-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def context(
    browser: Browser, app_server: Server, request: pytest.FixtureRequest
) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile on the server; a screenshot of its last page is kept, and any
    script error on the page fails the test."""
    size = getattr(request, "param", {"width": 1280, "height": 800})
    viewport = ViewportSize(width=size["width"], height=size["height"])
    context = await browser.new_context(base_url=app_server.url, viewport=viewport)
    context.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    yield context
    SCREENSHOTS.mkdir(exist_ok=True)
    if context.pages:
        await context.pages[-1].screenshot(path=SCREENSHOTS / f"{request.node.name}.png")
    await context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def sign_in(page: Page, name: str) -> None:
    """Open the page and sign in by name (development sign-in)."""
    await page.goto("/")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_label("Message", exact=True).wait_for()


def words(count: int, prefix: str = "w") -> list[str]:
    """A reply's chunks: plain words, so the rendered text is the stored text."""
    return [f"{prefix}{i} " for i in range(count)]
