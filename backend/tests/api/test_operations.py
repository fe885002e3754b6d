"""Operating it: health and liveness, request ids, offline docs, the metrics endpoint."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.settings import Settings
from app.main import create_app

Auth = Callable[[str], dict[str, str]]


async def test_liveness_answers_without_the_database(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200
    body = live.json()
    assert body["status"] == "alive"
    assert body["pid"] == os.getpid()
    assert body["node"]


async def test_liveness_does_not_touch_the_database(settings: Settings) -> None:
    # An app whose database does not exist: readiness fails, liveness does not care.
    broken = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none", "node_name": "n1"}
    )
    app = create_app(broken)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health")
    assert live.status_code == 200
    assert live.json()["node"] == "n1"
    assert ready.status_code == 503


async def test_a_draining_process_fails_readiness_but_stays_alive(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """SIGTERM sets `draining` (app.main's `leave`): the load balancer must take the node out
    while it finishes its work, without thinking it dead."""
    lifecycle = app.state.services.lifecycle
    lifecycle.draining = True
    try:
        ready = await client.get("/health")
        head = await client.head("/health")
        live = await client.get("/health/live")
    finally:
        lifecycle.draining = False
    assert ready.status_code == head.status_code == 503
    assert ready.json()["status"] == "draining"
    assert ready.headers["retry-after"].isdigit()
    assert live.status_code == 200
    assert (await client.get("/health")).status_code == 200


async def test_both_health_routes_answer_head(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/health/live"):
        response = await client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""


async def test_request_ids_are_kept_when_well_formed_and_made_otherwise(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/health/live", headers={"X-Request-ID": "abc-123_X.y"})
    assert kept.headers["x-request-id"] == "abc-123_X.y"
    for bad in ("has space", "x" * 129, "semi;colon", ""):
        made = await client.get("/health/live", headers={"X-Request-ID": bad})
        assert made.headers["x-request-id"] != bad
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    first = (await client.get("/health/live")).headers["x-request-id"]
    second = (await client.get("/health/live")).headers["x-request-id"]
    assert first != second


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_every_asset_from_the_application(
    client: httpx.AsyncClient, page: str
) -> None:
    html = (await client.get(page)).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls, html
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    scripts = [u for u in urls if u.endswith(".js")]
    assert scripts
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000 or url.endswith(".png"), url


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    await client.get("/api/sessions/12345", headers=alice)
    await client.get("/no/such/route/at/all")
    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    assert re.search(
        r'agent_stack_http_requests_total\{method="GET",route="/api/sessions/\{session_id\}",'
        r'status="4xx"\} [1-9]',
        text,
    )
    assert 'route="unmatched"' in text
    assert "/no/such/route" not in text
    for name in (
        "agent_stack_http_request_duration_seconds_bucket",
        "agent_stack_db_pool_connections_in_use",
        "agent_stack_db_pool_waiting",
        "agent_stack_db_pool_timeouts_total",
    ):
        assert name in text, name


@pytest.fixture
async def guarded(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(
        settings.model_copy(update={"metrics_token": SecretStr("scraper-token-0123456789")}),
        engine=engine,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client


async def test_metrics_need_the_metrics_token_when_one_is_set(
    guarded: httpx.AsyncClient, auth: Auth
) -> None:
    assert (await guarded.get("/metrics")).status_code == 401
    user_token = await guarded.get("/metrics", headers=auth("alice"))
    assert user_token.status_code == 401
    wrong = await guarded.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = await guarded.get(
        "/metrics", headers={"Authorization": "Bearer scraper-token-0123456789"}
    )
    assert right.status_code == 200
    assert "agent_stack_http_requests_total" in right.text


def _sample(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_reply_shows_in_the_reply_metrics(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("metrics-alice")
    before = (await client.get("/metrics")).text
    sid = (await client.post("/api/sessions/", json={"title": "m"}, headers=alice)).json()["id"]
    reply = await client.post(f"/api/sessions/{sid}/replies", json={"content": "hi"}, headers=alice)
    assert "event: done" in reply.text
    after = (await client.get("/metrics")).text
    model = '{model="simulated"}'
    for name, labels in [
        ("agent_stack_replies_started_total", model),
        ("agent_stack_replies_ended_total", '{model="simulated",outcome="completed"}'),
        ("agent_stack_reply_time_to_first_token_seconds_count", model),
        ("agent_stack_reply_duration_seconds_count", model),
    ]:
        assert _sample(after, name, labels) == _sample(before, name, labels) + 1, name
    output = '{direction="output",model="simulated"}'
    assert _sample(after, "agent_stack_reply_tokens_total", output) > _sample(
        before, "agent_stack_reply_tokens_total", output
    )
    assert _sample(after, "agent_stack_replies_active") == _sample(
        before, "agent_stack_replies_active"
    )
    # Event streams stay out of the latency histogram (their length is the reply's).
    latency = "agent_stack_http_request_duration_seconds_count"
    route = '{method="POST",route="/api/sessions/{session_id}/replies"}'
    assert _sample(after, latency, route) == _sample(before, latency, route)
    assert _sample(after, latency, '{method="POST",route="/api/sessions/"}') > 0
