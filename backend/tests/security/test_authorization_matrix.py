"""Every `/api` route and every verb, called by bob against alice's data.

The route list comes from the app itself: a new route that is not in MATRIX fails
`test_every_api_route_is_in_the_matrix`, so nobody can add an endpoint and forget its authorization.
Another user's ids always answer 404 (worded exactly like a missing id), and nothing of alice's
changes, whatever bob does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Auth = Callable[[str], dict[str, str]]
VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MISSING_ID = 9_000_000_000


@dataclass(frozen=True)
class Alice:
    session_id: int
    message_id: int


@dataclass(frozen=True)
class Probe:
    """How bob calls a route: the URL (given alice's ids), a body, and the status he must get."""

    url: Callable[[Alice], str]
    status: int
    body: dict[str, Any] | None = None
    #: Called with bob's response, alice's ids and bob's own user id.
    check: Callable[[httpx.Response, Alice, int], None] | None = None
    #: For routes taking an id: the same URL with an id nobody has, to compare the 404s.
    missing_url: str | None = None


def _lists_none_of_alices(response: httpx.Response, alice: Alice, _: int) -> None:
    assert alice.session_id not in {item["id"] for item in response.json()}


def _is_bob(response: httpx.Response, _: Alice, bob_id: int) -> None:
    assert response.json()["id"] == bob_id
    assert response.json()["subject"] == "bob"
    assert response.json()["session_count"] == 0


def _owned_by_bob(response: httpx.Response, alice: Alice, bob_id: int) -> None:
    """The owner is what matters, not the id: the new session must be bob's."""
    assert response.json()["user_id"] == bob_id
    assert response.json()["id"] != alice.session_id


def _finds_none_of_alices(response: httpx.Response, alice: Alice, _: int) -> None:
    """Bob searches for the very word of alice's message (and her title's): nothing."""
    assert response.json() == []


def _counts_nothing_of_alices(response: httpx.Response, _: Alice, __: int) -> None:
    assert response.json()["total"] == {"input_tokens": 0, "output_tokens": 0, "replies": 0}
    assert response.json()["groups"] == []


def _exports_nothing_of_alices(response: httpx.Response, alice: Alice, _: int) -> None:
    assert response.headers["content-type"] == "application/x-ndjson"
    assert "secret" not in response.text
    assert str(alice.session_id) not in response.text


MESSAGE = {"role": "user", "content": "bob was here"}

MATRIX: dict[tuple[str, str], Probe] = {
    ("POST", "/api/sessions/"): Probe(
        lambda a: "/api/sessions/", 201, {"title": "bob's"}, _owned_by_bob
    ),
    ("GET", "/api/sessions/"): Probe(lambda a: "/api/sessions/", 200, check=_lists_none_of_alices),
    ("GET", "/api/sessions/{session_id}"): Probe(
        lambda a: f"/api/sessions/{a.session_id}",
        404,
        missing_url=f"/api/sessions/{MISSING_ID}",
    ),
    ("PATCH", "/api/sessions/{session_id}"): Probe(
        lambda a: f"/api/sessions/{a.session_id}",
        404,
        {"title": "pwned"},
        missing_url=f"/api/sessions/{MISSING_ID}",
    ),
    ("DELETE", "/api/sessions/{session_id}"): Probe(
        lambda a: f"/api/sessions/{a.session_id}",
        404,
        missing_url=f"/api/sessions/{MISSING_ID}",
    ),
    ("POST", "/api/messages/"): Probe(
        lambda a: f"/api/messages/?session_id={a.session_id}",
        404,
        MESSAGE,
        missing_url=f"/api/messages/?session_id={MISSING_ID}",
    ),
    ("GET", "/api/messages/"): Probe(
        lambda a: f"/api/messages/?session_id={a.session_id}",
        404,
        missing_url=f"/api/messages/?session_id={MISSING_ID}",
    ),
    ("GET", "/api/messages/{message_id}"): Probe(
        lambda a: f"/api/messages/{a.message_id}",
        404,
        missing_url=f"/api/messages/{MISSING_ID}",
    ),
    ("POST", "/api/sessions/{session_id}/replies"): Probe(
        lambda a: f"/api/sessions/{a.session_id}/replies",
        404,
        {"content": "bob was here"},
        missing_url=f"/api/sessions/{MISSING_ID}/replies",
    ),
    ("GET", "/api/messages/{message_id}/stream"): Probe(
        lambda a: f"/api/messages/{a.message_id}/stream",
        404,
        missing_url=f"/api/messages/{MISSING_ID}/stream",
    ),
    ("POST", "/api/messages/{message_id}/cancel"): Probe(
        lambda a: f"/api/messages/{a.message_id}/cancel",
        404,
        missing_url=f"/api/messages/{MISSING_ID}/cancel",
    ),
    ("GET", "/api/sessions/{session_id}/thread"): Probe(
        lambda a: f"/api/sessions/{a.session_id}/thread",
        404,
        missing_url=f"/api/sessions/{MISSING_ID}/thread",
    ),
    ("POST", "/api/sessions/{session_id}/fork"): Probe(
        lambda a: f"/api/sessions/{a.session_id}/fork",
        404,
        {},
        missing_url=f"/api/sessions/{MISSING_ID}/fork",
    ),
    ("POST", "/api/messages/{message_id}/regenerate"): Probe(
        lambda a: f"/api/messages/{a.message_id}/regenerate",
        404,
        missing_url=f"/api/messages/{MISSING_ID}/regenerate",
    ),
    ("PUT", "/api/messages/{message_id}/feedback"): Probe(
        lambda a: f"/api/messages/{a.message_id}/feedback",
        404,
        {"rating": "down"},
        missing_url=f"/api/messages/{MISSING_ID}/feedback",
    ),
    ("DELETE", "/api/messages/{message_id}/feedback"): Probe(
        lambda a: f"/api/messages/{a.message_id}/feedback",
        404,
        missing_url=f"/api/messages/{MISSING_ID}/feedback",
    ),
    ("GET", "/api/sessions/{session_id}/export"): Probe(
        lambda a: f"/api/sessions/{a.session_id}/export",
        404,
        missing_url=f"/api/sessions/{MISSING_ID}/export",
    ),
    ("POST", "/api/sessions/import"): Probe(
        lambda a: "/api/sessions/import", 201, {"messages": [MESSAGE]}, _owned_by_bob
    ),
    ("GET", "/api/users/me/export"): Probe(
        lambda a: "/api/users/me/export", 200, check=_exports_nothing_of_alices
    ),
    ("GET", "/api/users/me"): Probe(lambda a: "/api/users/me", 200, check=_is_bob),
    ("GET", "/api/users/me/usage"): Probe(
        lambda a: "/api/users/me/usage?group_by=session", 200, check=_counts_nothing_of_alices
    ),
    ("GET", "/api/search"): Probe(
        lambda a: "/api/search?q=secret%20or%20alice", 200, check=_finds_none_of_alices
    ),
    ("DELETE", "/api/users/me"): Probe(lambda a: "/api/users/me", 204),
}


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(verb, path) of every route under /api, however deeply its router is included. A route
    without methods (a mount) shows as verb "*": it cannot be probed, so it fails coverage."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith("/api"):
            methods = route.methods or {"*"}
            found |= {(m, path) for m in methods if m not in {"HEAD", "OPTIONS"}}
    return found


def test_every_api_route_is_in_the_matrix(app: FastAPI) -> None:
    routes = api_routes(app)
    missing = sorted(routes - MATRIX.keys())
    assert not missing, f"routes with no authorization probe: {missing}"
    assert not sorted(MATRIX.keys() - routes), "probes for routes that no longer exist"


async def _alice(client: httpx.AsyncClient, auth: Auth) -> Alice:
    session = await client.post("/api/sessions/", json={"title": "alice's"}, headers=auth("alice"))
    message = await client.post(
        f"/api/messages/?session_id={session.json()['id']}",
        json={"role": "user", "content": "secret"},
        headers=auth("alice"),
    )
    return Alice(session.json()["id"], message.json()["id"])


async def _snapshot(engine: AsyncEngine) -> list[Any]:
    """Every row alice owns, with every column: any change of hers shows here."""
    queries = [
        "SELECT u.* FROM users u WHERE auth0_id = 'alice'",
        "SELECT s.* FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.auth0_id = 'alice'",
        "SELECT m.* FROM messages m JOIN sessions s ON s.id = m.session_id "
        "JOIN users u ON u.id = s.user_id WHERE u.auth0_id = 'alice'",
    ]
    async with engine.connect() as conn:
        return [(await conn.execute(text(q))).all() for q in queries]


def _same_words(response: httpx.Response) -> str:
    return re.sub(r"\d+", "N", response.json()["detail"])


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX), ids=" ".join)
async def test_bob_cannot_touch_alices_data(
    client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine, method: str, path: str
) -> None:
    alice = await _alice(client, auth)
    bob = await client.get("/api/users/me", headers=auth("bob"))
    assert bob.status_code == 200
    bob_id: int = bob.json()["id"]
    before = await _snapshot(engine)
    probe = MATRIX[(method, path)]

    response = await client.request(method, probe.url(alice), json=probe.body, headers=auth("bob"))
    assert response.status_code == probe.status, response.text
    if probe.check is not None:
        probe.check(response, alice, bob_id)
    if probe.missing_url is not None:
        missing = await client.request(
            method, probe.missing_url, json=probe.body, headers=auth("bob")
        )
        assert missing.status_code == 404
        assert _same_words(missing) == _same_words(response)  # no existence leak
    assert await _snapshot(engine) == before


@pytest.mark.parametrize("path", sorted({path for _, path in MATRIX}))
async def test_unrouted_verbs_are_405_and_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, engine: AsyncEngine, path: str
) -> None:
    alice = await _alice(client, auth)
    before = await _snapshot(engine)
    routed = {method for method, p in api_routes(app) if p == path}
    concrete = path.format(session_id=alice.session_id, message_id=alice.message_id)
    unrouted = [verb for verb in VERBS if verb not in routed]
    assert unrouted
    for verb in unrouted:
        response = await client.request(verb, concrete, json={"title": "x"}, headers=auth("bob"))
        assert response.status_code == 405, (verb, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await _snapshot(engine) == before


async def _bobs_session(client: httpx.AsyncClient, auth: Auth) -> tuple[int, int]:
    session = await client.post("/api/sessions/", json={"title": "bob's"}, headers=auth("bob"))
    message = await client.post(
        f"/api/messages/?session_id={session.json()['id']}",
        json={"role": "user", "content": "mine"},
        headers=auth("bob"),
    )
    return session.json()["id"], message.json()["id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PATCH", "/api/sessions/{bob}", {"current_message_id": "{alice}"}, "current_message_id"),
        (
            "POST",
            "/api/sessions/{bob}/replies",
            {"content": "x", "parent_id": "{alice}"},
            "parent_id",
        ),
        ("POST", "/api/sessions/{bob}/fork", {"message_id": "{alice}"}, "message_id"),
        ("GET", "/api/sessions/{bob}/thread?before={alice}", None, "before"),
    ],
)
async def test_alices_message_ids_are_refused_in_bobs_session(
    client: httpx.AsyncClient,
    auth: Auth,
    engine: AsyncEngine,
    method: str,
    path: str,
    body: dict[str, str] | None,
    field: str,
) -> None:
    """A body field or query parameter naming another user's message is a 422 naming the
    field, the same as a message of another of bob's sessions; nobody's rows change."""
    alice = await _alice(client, auth)
    bob_session, _bob_message = await _bobs_session(client, auth)
    other_session, other_message = await _bobs_session(client, auth)
    before = await _snapshot(engine)
    bob_before = (await client.get(f"/api/sessions/{bob_session}", headers=auth("bob"))).json()
    answers = []
    for foreign in (alice.message_id, other_message):
        values = {"bob": str(bob_session), "alice": str(foreign)}
        url = path.format(**values)
        sent = {k: int(v.format(**values)) if "{" in v else v for k, v in (body or {}).items()}
        response = await client.request(
            method, url, json=sent if body is not None else None, headers=auth("bob")
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][-1] == field
        answers.append(_same_words(response))
    assert answers[0] == answers[1]  # alice's message looks like any message of another session
    assert await _snapshot(engine) == before
    after = (await client.get(f"/api/sessions/{bob_session}", headers=auth("bob"))).json()
    assert after == bob_before
    sessions = (await client.get("/api/sessions/", headers=auth("bob"))).json()
    assert len(sessions) == 2, "no fork was created"
    assert other_session in {s["id"] for s in sessions}
