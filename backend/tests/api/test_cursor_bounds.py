"""Cursors and ids at the edges of what they can hold: a 422 problem document, never a 500.

A cursor is `<microseconds since the epoch>_<id>`: at most 16 digits of microseconds (optionally
negative) and a positive id of at most 18 digits, so that every accepted cursor decodes to a
timestamp PostgreSQL and Python can both hold and an id below BIGINT's maximum."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

Auth = Callable[[str], dict[str, str]]

BAD_CURSORS = {
    "id zero": "0_0",
    "id zero after a timestamp": "1_0",
    "id past BIGINT": "1_9223372036854775808",
    "id of 19 digits": "1_1000000000000000000",
    "BIGINT max itself (19 digits)": "1_9223372036854775807",
    "id far past BIGINT": "1_99999999999999999999999999",
    "timestamp of 17 digits": "10000000000000000_1",
    "negative timestamp of 17 digits": "-10000000000000000_1",
    "timestamp of 20 digits": "99999999999999999999_1",
    "negative zero timestamp, id zero": "-0_0",
    "id negative zero": "1_-0",
    "negative id": "1_-1",
    "leading zero in the id": "1_01",
    "empty": "",
    "underscore only": "_",
    "no id": "1_",
    "no timestamp": "_1",
    "no separator": "11",
    "two separators": "1_1_1",
    "fraction": "1.5_1",
    "spaces": " 1_1",
    "non-ASCII digits": "\u0661_\u0661",
}

#: The largest and smallest values the format accepts: answered (an empty page), not a 500.
GOOD_CURSORS = {
    "largest timestamp": "9999999999999999_1",
    "smallest timestamp": "-9999999999999999_1",
    "negative zero timestamp": "-0_1",
    "largest id": "1_999999999999999999",
    "epoch": "0_1",
}


def _list(kind: str, session_id: int) -> tuple[str, dict[str, str | int]]:
    if kind == "sessions":
        return "/api/sessions/", {}
    return "/api/messages/", {"session_id": session_id}


@pytest.fixture
async def session_id(client: httpx.AsyncClient, auth: Auth) -> int:
    created = await client.post("/api/sessions/", json={"title": "bounds"}, headers=auth("alice"))
    assert created.status_code == 201
    posted = await client.post(
        f"/api/messages/?session_id={created.json()['id']}",
        json={"role": "user", "content": "hi"},
        headers=auth("alice"),
    )
    assert posted.status_code == 201
    sid: int = created.json()["id"]
    return sid


@pytest.mark.parametrize("kind", ["sessions", "messages"])
@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
async def test_cursors_out_of_bounds_are_422(
    client: httpx.AsyncClient, auth: Auth, session_id: int, kind: str, cursor: str
) -> None:
    url, params = _list(kind, session_id)
    response = await client.get(url, params={**params, "after": cursor}, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert "after" in problem["detail"]


@pytest.mark.parametrize("kind", ["sessions", "messages"])
@pytest.mark.parametrize("cursor", GOOD_CURSORS.values(), ids=GOOD_CURSORS.keys())
async def test_cursors_at_the_bounds_are_answered(
    client: httpx.AsyncClient, auth: Auth, session_id: int, kind: str, cursor: str
) -> None:
    url, params = _list(kind, session_id)
    response = await client.get(url, params={**params, "after": cursor}, headers=auth("alice"))
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)


@pytest.mark.parametrize("bad_id", ["0", "-0", "9223372036854775808", "10000000000000000000"])
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/api/sessions/{}"),
        ("PATCH", "/api/sessions/{}"),
        ("DELETE", "/api/sessions/{}"),
        ("POST", "/api/sessions/{}/replies"),
        ("GET", "/api/messages/{}"),
        ("GET", "/api/messages/{}/stream"),
        ("POST", "/api/messages/{}/cancel"),
        ("GET", "/api/messages/?session_id={}"),
        ("POST", "/api/messages/?session_id={}"),
    ],
)
async def test_ids_out_of_bounds_are_422(
    client: httpx.AsyncClient, auth: Auth, method: str, template: str, bad_id: str
) -> None:
    bodies = {
        "/api/sessions/{}": {"title": "t"},
        "/api/sessions/{}/replies": {"content": "hi"},
        "/api/messages/?session_id={}": {"role": "user", "content": "hi"},
    }
    body = bodies.get(template) if method in {"PATCH", "POST"} else None
    response = await client.request(
        method, template.format(bad_id), json=body, headers=auth("alice")
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 422
