"""`/health` keeps its own bound: with the database black-holed (connections accepted, never
answered) it answers 503 within HEALTH_TIMEOUT_S (2 s), whatever the connect timeout is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.database import create_engine
from app.core.settings import Settings
from app.main import create_app
from tests.support.proxy import DatabaseProxy

#: 2 s of health check plus generous slack; a bound, not a benchmark.
BOUND_S = 3.0


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[DatabaseProxy]:
    assert settings.database_url is not None
    proxy = DatabaseProxy(settings.database_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def health_client(
    settings: Settings, proxy: DatabaseProxy
) -> AsyncIterator[httpx.AsyncClient]:
    # Connect and pool timeouts far beyond the health bound: only /health's own limit can
    # answer in time.
    settings = settings.model_copy(
        update={"database_url": proxy.url, "db_connect_timeout_s": 30.0, "db_pool_timeout_s": 30.0}
    )
    engine = create_engine(settings)
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await engine.dispose()


async def _timed_health(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    try:
        response = await asyncio.wait_for(client.get("/health"), 10)
    except TimeoutError:
        raise AssertionError("/health did not answer within 10 s") from None
    return response, time.monotonic() - start


async def test_health_with_the_database_black_holed_is_503_within_its_bound(
    health_client: httpx.AsyncClient, proxy: DatabaseProxy
) -> None:
    healthy, _ = await _timed_health(health_client)
    assert healthy.status_code == 200

    await proxy.set_mode("blackhole")
    for _ in range(2):  # a pooled connection gone dead, then a fresh connection that hangs
        response, elapsed = await _timed_health(health_client)
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "unhealthy"
        assert response.headers["retry-after"].isdigit()
        assert elapsed < BOUND_S, f"/health took {elapsed:.1f} s with the database black-holed"

    await proxy.set_mode("up")
    recovered, _ = await _timed_health(health_client)
    assert recovered.status_code == 200


async def test_health_with_the_database_black_holed_from_the_start(
    health_client: httpx.AsyncClient, proxy: DatabaseProxy
) -> None:
    await proxy.set_mode("blackhole")
    response, elapsed = await _timed_health(health_client)
    assert response.status_code == 503, response.text
    assert elapsed < BOUND_S, f"/health took {elapsed:.1f} s with the database black-holed"
