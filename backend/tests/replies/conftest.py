from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.main import create_app
from tests.support.fake_llm import FakeChatServer
from tests.support.servers import InProcessServer, serve_in_process

#: Fast defaults for the tests; individual tests slow the model down where they need time.
FAST = {
    "simulated_tokens": 20,
    "simulated_delay_ms": 2.0,
    "reply_flush_ms": 20,
    "reply_shutdown_grace_s": 0.0,
    # The retention sweep runs only where a test runs it (it would race with the truncation).
    "retention_sweep_s": 86_400,
}

Serve = Callable[..., Awaitable[InProcessServer]]


@pytest.fixture(autouse=True)
def _clean_tables(clean_tables: None) -> None:
    """These tests commit through the app: each starts from empty tables."""


@pytest.fixture
async def llm() -> AsyncIterator[FakeChatServer]:
    """A local OpenAI-compatible Chat Completions server (see tests/support/fake_llm.py)."""
    server = FakeChatServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_settings(settings: Settings) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return settings.model_copy(update={**FAST, **overrides})

    return make


@pytest.fixture
async def serve(make_settings: Callable[..., Settings]) -> AsyncIterator[Serve]:
    """`await serve(**settings)` → a real uvicorn on 127.0.0.1 running its own app instance
    (own engine, own reply hub), stopped at the end of the test."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> InProcessServer:
            app = create_app(make_settings(**overrides))
            return await stack.enter_async_context(serve_in_process(app))

        yield start


@pytest.fixture
async def server(serve: Serve) -> InProcessServer:
    return await serve()


@pytest.fixture
async def http(server: InProcessServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        yield client
