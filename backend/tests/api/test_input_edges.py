"""Hostile or malformed requests: always a clear 4xx problem document, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query

from app.api.routing import StrictQueryRoute
from app.core.settings import Settings

Auth = Callable[[str], dict[str, str]]


@pytest.mark.parametrize(
    "path",
    [
        "/api/sessions/abc",
        "/api/sessions/0",
        "/api/sessions/-1",
        "/api/sessions/9223372036854775808",
        "/api/sessions/99999999999999999999999999",
        "/api/messages/1.5",
        "/api/messages/?session_id=9223372036854775808",
        "/api/messages/?session_id=x",
        "/api/sessions/?skip=-1",
        "/api/sessions/?skip=10001",
        "/api/sessions/?limit=abc",
        "/api/sessions/?after=not-a-cursor",
        "/api/messages/?session_id=1&after=%%%",
    ],
)
async def test_bad_ids_and_paging_are_422(client: httpx.AsyncClient, auth: Auth, path: str) -> None:
    response = await client.get(path, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]


async def test_largest_bigint_id_is_a_plain_404(client: httpx.AsyncClient, auth: Auth) -> None:
    response = await client.get("/api/sessions/9223372036854775807", headers=auth("alice"))
    assert response.status_code == 404


async def test_malformed_json_is_400_as_documented(client: httpx.AsyncClient, auth: Auth) -> None:
    headers = {**auth("alice"), "Content-Type": "application/json"}
    response = await client.post("/api/sessions/", content=b'{"title": ', headers=headers)
    assert response.status_code == 400
    assert response.json()["title"] == "Bad request"
    not_object = await client.post("/api/sessions/", content=b'["title"]', headers=headers)
    assert not_object.status_code == 422


async def test_body_over_the_limit_is_413(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    alice = auth("alice")
    big = b'{"title": "' + b"x" * settings.max_body_bytes + b'"}'
    response = await client.post(
        "/api/sessions/", content=big, headers={**alice, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/sessions/", headers=alice)).json() == []


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient, auth: Auth) -> None:
    missing = await client.get("/api/nothing", headers=auth("alice"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await client.put("/api/sessions/", headers=auth("alice"))
    assert wrong.status_code == 405
    assert wrong.json()["status"] == 405


async def test_cors_allows_the_configured_origin_only(client: httpx.AsyncClient) -> None:
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await client.options("/api/sessions/", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = await client.options(
        "/api/sessions/", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_chunked_body_over_the_limit_is_413(
    client: httpx.AsyncClient, auth: Auth, settings: Settings
) -> None:
    alice = auth("alice")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/api/sessions/", content=chunks(), headers={**alice, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert (await client.get("/api/sessions/", headers=alice)).json() == []


@pytest.mark.parametrize(
    "path", ["/api/sessions/?limt=5", "/api/sessions/?=x", "/api/messages/?session_id=1&x=1"]
)
async def test_unknown_query_parameters_are_422(
    client: httpx.AsyncClient, auth: Auth, path: str
) -> None:
    response = await client.get(path, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/sessions/?limit=5&limit=50", "limit"),
        ("/api/messages/?session_id=1&session_id=2", "session_id"),
        ("/api/sessions/?skip=1&limit=2&skip=0", "skip"),
    ],
)
async def test_a_single_valued_query_parameter_given_twice_is_422(
    client: httpx.AsyncClient, auth: Auth, path: str, name: str
) -> None:
    response = await client.get(path, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"loc": ["query", name], "msg": "Given more than once; send it once", "type": "value_error"}
    ]


async def test_an_unknown_parameter_given_twice_is_named_once(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await client.get("/api/sessions/?x=1&x=2", headers=auth("alice"))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "x"]]


async def test_a_list_valued_query_parameter_may_repeat() -> None:
    app = FastAPI()
    router = APIRouter(route_class=StrictQueryRoute)

    @router.get("/tags")
    async def tags(tag: Annotated[list[str] | None, Query()] = None, n: int = 0) -> list[str]:
        return [*(tag or []), str(n)]

    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        assert (await c.get("/tags?tag=a&tag=b&n=1")).json() == ["a", "b", "1"]
        assert (await c.get("/tags?tag=a&n=1&n=2")).status_code == 422


@pytest.mark.parametrize("title", [" \u3000\x1c", "\x85\t", "a\x00b"])
async def test_blank_or_nul_titles_are_422(
    client: httpx.AsyncClient, auth: Auth, title: str
) -> None:
    response = await client.post("/api/sessions/", json={"title": title}, headers=auth("alice"))
    assert response.status_code == 422
