"""The exact error contract: problem members that cannot be overwritten, 400 vs 415 vs 422 for
bodies, decimal-only ids, and a request id in every problem document."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from app.api.errors import problem
from app.domain.errors import Conflict

Auth = Callable[[str], dict[str, str]]


def test_problem_builder_never_lets_an_extension_replace_a_standard_member() -> None:
    response = problem(
        409,
        "Conflict",
        "it is finished",
        extensions={"status": "completed", "type": "x", "instance": "y", "message_id": 7},
    )
    body = json.loads(bytes(response.body))
    assert body["status"] == 409
    assert body["type"] == "about:blank"
    assert "instance" not in body
    assert body["message_id"] == 7


def test_domain_errors_refuse_reserved_extension_names() -> None:
    with pytest.raises(TypeError, match="status"):
        Conflict("finished", status="completed")
    assert Conflict("finished", message_status="completed").extensions == {
        "message_status": "completed"
    }


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_not_declared_json_is_415(
    client: httpx.AsyncClient, auth: Auth, content_type: str | None
) -> None:
    headers = {**auth("alice")}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post("/api/sessions/", content=b'{"title": "x"}', headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 415
    assert "application/json" in response.json()["detail"]
    listed = await client.get("/api/sessions/", headers=auth("alice"))
    assert listed.json() == []


async def test_json_media_types_with_parameters_and_suffixes_are_accepted(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        headers = {**auth("alice"), "Content-Type": content_type}
        response = await client.post("/api/sessions/", content=b'{"title": "x"}', headers=headers)
        assert response.status_code == 201, (content_type, response.text)


async def test_every_route_with_a_json_body_answers_415(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    alice = auth("alice")
    sid = (await client.post("/api/sessions/", json={"title": "t"}, headers=alice)).json()["id"]
    plain = {**alice, "Content-Type": "text/plain"}
    for method, url in [
        ("POST", "/api/sessions/"),
        ("PATCH", f"/api/sessions/{sid}"),
        ("POST", f"/api/messages/?session_id={sid}"),
        ("POST", f"/api/sessions/{sid}/replies"),
    ]:
        response = await client.request(method, url, content=b"{}", headers=plain)
        assert response.status_code == 415, (method, url, response.text)


async def test_malformed_json_is_400_and_the_openapi_says_so(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    headers = {**auth("alice"), "Content-Type": "application/json"}
    response = await client.post("/api/sessions/", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert "not valid JSON" in response.json()["detail"]
    schema = (await client.get("/openapi.json")).json()
    for path, method in [("/api/sessions/", "post"), ("/api/sessions/{session_id}", "patch")]:
        responses = schema["paths"][path][method]["responses"]
        assert "400" in responses
        assert "415" in responses


@pytest.mark.parametrize("raw", ["1.0", "+1", "%201", "1e0", "1_0", "0x1", "%EF%BC%91"])
async def test_ids_are_decimal_digits_only(client: httpx.AsyncClient, auth: Auth, raw: str) -> None:
    alice = auth("alice")
    created = await client.post("/api/sessions/", json={"title": "keep me"}, headers=alice)
    assert created.json()["id"] == 1
    deleted = await client.delete(f"/api/sessions/{raw}", headers=alice)
    assert deleted.status_code == 422, deleted.text
    listed = await client.get(f"/api/messages/?session_id={raw}", headers=alice)
    assert listed.status_code == 422
    assert (await client.get("/api/sessions/1", headers=alice)).status_code == 200


async def test_problem_documents_carry_the_request_id(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await client.get(
        "/api/sessions/999", headers={**auth("alice"), "X-Request-ID": "trace-me.1"}
    )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "trace-me.1"
    assert response.json()["request_id"] == "trace-me.1"
    unauthorised = await client.get("/api/sessions/")
    assert unauthorised.json()["request_id"] == unauthorised.headers["x-request-id"]
