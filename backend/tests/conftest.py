"""Fixtures shared by every test that needs the database or the app."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_engine
from app.core.security import LocalTokens
from app.core.settings import Settings
from app.main import create_app
from tests.support.database import test_database_url, truncate, upgrade

warnings.filterwarnings("ignore", module="platformdirs")

AUTH_SECRET = "test-secret-0123456789-0123456789-0123456789"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with test_database_url() as url:
        yield url


@pytest.fixture(scope="session")
async def migrated_url(database_url: str) -> str:
    await upgrade(database_url)
    return database_url


@pytest.fixture(scope="session")
def settings(migrated_url: str) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=migrated_url,
        auth_secret=AUTH_SECRET,
        db_pool_size=10,
        db_max_overflow=10,
        # Tests run the retention sweep themselves (tests/api/test_retention.py): a sweep of
        # the shared app's own would race with the truncation between tests.
        retention_sweep_s=86_400,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (the reply hub included), as uvicorn would run it."""
    app = create_app(settings, engine=engine)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
async def clean_tables(engine: AsyncEngine, app: FastAPI) -> None:
    """Empty tables, and a shared app that has forgotten every caller (identities restart with
    the tables). The packages whose tests commit through the app use it for every test."""
    await truncate(engine)
    app.state.services.known_users.clear()


@pytest.fixture(scope="session")
def auth(settings: Settings) -> Callable[[str], dict[str, str]]:
    """`auth("alice")` → headers carrying a valid bearer token for subject alice."""
    tokens = LocalTokens(settings)

    def headers(subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.mint(subject)}"}

    return headers
