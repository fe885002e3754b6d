"""Two users, every endpoint: the other user's ids always answer 404 and change nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
async def bobs(client: httpx.AsyncClient, auth: Auth) -> dict[str, int]:
    bob = auth("bob")
    session = await client.post("/api/sessions/", json={"title": "bob's secret"}, headers=bob)
    message = await client.post(
        f"/api/messages/?session_id={session.json()['id']}",
        json={"role": "user", "content": "bob's words"},
        headers=bob,
    )
    return {"session": session.json()["id"], "message": message.json()["id"]}


def _requests(ids: dict[str, int]) -> list[tuple[str, str, dict[str, object] | None]]:
    s, m = ids["session"], ids["message"]
    return [
        ("GET", f"/api/sessions/{s}", None),
        ("PATCH", f"/api/sessions/{s}", {"title": "pwned"}),
        ("DELETE", f"/api/sessions/{s}", None),
        ("POST", f"/api/messages/?session_id={s}", {"role": "user", "content": "pwned"}),
        ("GET", f"/api/messages/?session_id={s}", None),
        ("GET", f"/api/messages/{m}", None),
    ]


@pytest.mark.parametrize("index", range(6))
async def test_other_users_ids_are_404(
    client: httpx.AsyncClient, auth: Auth, bobs: dict[str, int], index: int
) -> None:
    alice, bob = auth("alice"), auth("bob")
    method, url, body = _requests(bobs)[index]
    response = await client.request(method, url, json=body, headers=alice)
    assert response.status_code == 404, f"{method} {url}: {response.status_code}"

    # The answer is word for word the one for an id that does not exist at all.
    missing = {k: v + 1000 for k, v in bobs.items()}
    m_method, m_url, m_body = _requests(missing)[index]
    absent = await client.request(m_method, m_url, json=m_body, headers=alice)
    assert response.json()["title"] == absent.json()["title"]
    assert response.json()["detail"].replace(str(bobs["session"]), "X").replace(
        str(bobs["message"]), "X"
    ) == absent.json()["detail"].replace(str(missing["session"]), "X").replace(
        str(missing["message"]), "X"
    )

    session = await client.get(f"/api/sessions/{bobs['session']}", headers=bob)
    assert session.json()["title"] == "bob's secret"
    assert session.json()["message_count"] == 1
    messages = await client.get(f"/api/messages/?session_id={bobs['session']}", headers=bob)
    assert [m["content"] for m in messages.json()] == ["bob's words"]


async def test_lists_only_show_the_callers_rows(
    client: httpx.AsyncClient, auth: Auth, bobs: dict[str, int]
) -> None:
    alice = auth("alice")
    mine = await client.post("/api/sessions/", json={"title": "alice's"}, headers=alice)
    listed = await client.get("/api/sessions/", headers=alice)
    assert [s["id"] for s in listed.json()] == [mine.json()["id"]]
    assert bobs["session"] not in [s["id"] for s in listed.json()]
