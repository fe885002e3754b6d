from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

Auth = Callable[[str], dict[str, str]]


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], title: str
) -> dict[str, object]:
    response = await client.post("/api/sessions/", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_get_rename_delete(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    created = await create(client, alice, "  Trip to Lisbon  ")
    assert created["title"] == "Trip to Lisbon"
    assert created["message_count"] == 0
    assert set(created) >= {"id", "user_id", "title", "message_count", "created_at", "updated_at"}

    got = await client.get(f"/api/sessions/{created['id']}", headers=alice)
    assert got.status_code == 200
    assert got.json() == created

    renamed = await client.patch(
        f"/api/sessions/{created['id']}", json={"title": "Porto instead"}, headers=alice
    )
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Porto instead"
    assert renamed.json()["updated_at"] > str(created["updated_at"])

    deleted = await client.delete(f"/api/sessions/{created['id']}", headers=alice)
    assert deleted.status_code == 204
    assert deleted.content == b""
    missing = await client.get(f"/api/sessions/{created['id']}", headers=alice)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == f"session {created['id']} not found"
    again = await client.delete(f"/api/sessions/{created['id']}", headers=alice)
    assert again.status_code == 404


async def test_delete_takes_the_messages_with_it(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    session = await create(client, alice, "doomed")
    message = await client.post(
        f"/api/messages/?session_id={session['id']}",
        json={"role": "user", "content": "hi"},
        headers=alice,
    )
    assert message.status_code == 201
    assert (await client.delete(f"/api/sessions/{session['id']}", headers=alice)).status_code == 204
    gone = await client.get(f"/api/messages/{message.json()['id']}", headers=alice)
    assert gone.status_code == 404


async def test_list_is_most_recently_active_first(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    first = await create(client, alice, "first")
    second = await create(client, alice, "second")
    third = await create(client, alice, "third")

    listed = await client.get("/api/sessions/", headers=alice)
    assert [s["id"] for s in listed.json()] == [third["id"], second["id"], first["id"]]

    # A new message in the oldest session moves it to the top, with its count.
    posted = await client.post(
        f"/api/messages/?session_id={first['id']}",
        json={"role": "user", "content": "bump"},
        headers=alice,
    )
    assert posted.status_code == 201
    listed = await client.get("/api/sessions/", headers=alice)
    assert [s["id"] for s in listed.json()] == [first["id"], third["id"], second["id"]]
    assert listed.json()[0]["message_count"] == 1
    assert listed.json()[0]["updated_at"] >= posted.json()["created_at"]


async def test_pages_never_repeat_or_skip(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    ids = [(await create(client, alice, f"s{i}"))["id"] for i in range(7)]
    expected = list(reversed(ids))

    by_skip = []
    for skip in range(0, 7, 3):
        page = await client.get(f"/api/sessions/?limit=3&skip={skip}", headers=alice)
        by_skip += [s["id"] for s in page.json()]
    assert by_skip == expected

    by_cursor: list[object] = []
    url: str | None = "/api/sessions/?limit=3"
    while url:
        page = await client.get(url, headers=alice)
        assert page.status_code == 200
        by_cursor += [s["id"] for s in page.json()]
        url = page.links.get("next", {}).get("url")
    assert by_cursor == expected


async def test_default_and_maximum_limits(client: httpx.AsyncClient, auth: Auth) -> None:
    alice = auth("alice")
    await asyncio.gather(*(create(client, alice, f"s{i}") for i in range(55)))
    default = await client.get("/api/sessions/", headers=alice)
    assert len(default.json()) == 50
    assert 'rel="next"' in default.headers["link"]
    assert len((await client.get("/api/sessions/?limit=100", headers=alice)).json()) == 55
    assert (await client.get("/api/sessions/?limit=101", headers=alice)).status_code == 422
    assert (await client.get("/api/sessions/?limit=0", headers=alice)).status_code == 422
    last = await client.get("/api/sessions/?limit=100", headers=alice)
    assert "link" not in last.headers


@pytest.mark.parametrize("title", ["", "   ", "\t\n", "x" * 501, "nul\x00byte"])
async def test_bad_titles_are_422_and_change_nothing(
    client: httpx.AsyncClient, auth: Auth, title: str
) -> None:
    alice = auth("alice")
    response = await client.post("/api/sessions/", json={"title": title}, headers=alice)
    assert response.status_code == 422
    problem = response.json()
    assert problem["status"] == 422
    assert "title" in problem["detail"]
    assert (await client.get("/api/sessions/", headers=alice)).json() == []

    session = await create(client, alice, "keep me")
    patched = await client.patch(
        f"/api/sessions/{session['id']}", json={"title": title}, headers=alice
    )
    assert patched.status_code == 422
    still = await client.get(f"/api/sessions/{session['id']}", headers=alice)
    assert still.json()["title"] == "keep me"


async def test_title_of_exactly_500_chars_after_trim_is_kept(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    created = await create(client, auth("alice"), "y" * 500)
    assert created["title"] == "y" * 500


async def test_user_id_in_body_is_never_honoured(client: httpx.AsyncClient, auth: Auth) -> None:
    bob = await create(client, auth("bob"), "bob's")
    response = await client.post(
        "/api/sessions/", json={"title": "sneaky", "user_id": bob["user_id"]}, headers=auth("alice")
    )
    assert response.status_code == 422
    assert "user_id" in response.text
    assert (await client.get("/api/sessions/", headers=auth("bob"))).json()[0]["title"] == "bob's"
    assert (await client.get("/api/sessions/", headers=auth("alice"))).json() == []
