"""The database goes away and comes back: fast 503s meanwhile, then recovery with nothing lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.database import async_url, create_engine
from app.core.settings import Settings
from app.main import create_app
from tests.support.proxy import DatabaseProxy

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[DatabaseProxy]:
    assert settings.database_url is not None
    proxy = DatabaseProxy(settings.database_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def outage_client(
    settings: Settings, proxy: DatabaseProxy
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings.model_copy(update={"database_url": proxy.url})
    engine = create_engine(settings)
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
    await engine.dispose()


async def _timed(client: httpx.AsyncClient, method: str, url: str, **kw: object) -> httpx.Response:
    start = time.monotonic()
    response = await asyncio.wait_for(client.request(method, url, **kw), 10)  # type: ignore[arg-type]
    # Generous bound: the point is "no hang", not speed.
    assert time.monotonic() - start < 8, f"{method} {url} took too long"
    return response


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
async def test_outage_gives_503_then_recovers(
    outage_client: httpx.AsyncClient, proxy: DatabaseProxy, auth: Auth, mode: str
) -> None:
    client, alice = outage_client, auth("alice")
    healthy = await client.get("/health")
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "healthy", "database": "connected"}
    created = await client.post("/api/sessions/", json={"title": "before"}, headers=alice)
    assert created.status_code == 201

    await proxy.set_mode(mode)  # type: ignore[arg-type]
    health = await _timed(client, "GET", "/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    for method, url, body in [
        ("GET", "/api/sessions/", None),
        ("POST", "/api/sessions/", {"title": "during"}),
        ("GET", f"/api/sessions/{created.json()['id']}", None),
    ]:
        response = await _timed(client, method, url, json=body, headers=alice)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
        assert response.headers["content-type"] == "application/problem+json"

    await proxy.set_mode("up")
    recovered = await _timed(client, "GET", "/health")
    assert recovered.status_code == 200
    listed = await client.get("/api/sessions/", headers=alice)
    assert listed.status_code == 200
    assert [s["title"] for s in listed.json()] == ["before"]  # acknowledged kept, 503 not applied
    after = await client.post("/api/sessions/", json={"title": "after"}, headers=alice)
    assert after.status_code == 201


async def test_a_read_only_server_answers_503_not_500(settings: Settings, auth: Auth) -> None:
    """Mid-failover a write can reach a server that is still (or again) a read-only standby:
    a 503 with Retry-After makes the client retry onto the new primary."""
    assert settings.database_url is not None
    engine = create_async_engine(
        async_url(settings.database_url),
        connect_args={"server_settings": {"default_transaction_read_only": "on"}},
    )
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/api/sessions/", json={"title": "on a standby"}, headers=auth("alice")
            )
    finally:
        await engine.dispose()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert response.headers["content-type"] == "application/problem+json"
