"""Search from the sidebar: highlighted snippets (marked by the API, shown as text) that open
the hit, on its own branch if it is not on the active one."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import sign_in
from tests.support.fake_llm import FakeChatServer, Script


async def test_search_and_open_a_hit(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    client = api(user)
    trip = (await client.post("/api/sessions/", json={"title": "Lisbon trip"})).json()
    other = (await client.post("/api/sessions/", json={"title": "Other"})).json()
    llm.scripts.extend([Script(chunks=["Try the bakeries."]), Script(chunks=["Trams."])])
    url = f"/api/sessions/{trip['id']}/replies"
    # The question found is on a branch that is no longer the active one.
    first = await client.post(url, json={"content": "Where is the best <b>pastel</b> de nata?"})
    assert first.status_code == 200
    second = await client.post(url, json={"content": "How do I get around?", "parent_id": None})
    assert second.status_code == 200
    await client.post(
        f"/api/messages/?session_id={other['id']}", json={"role": "user", "content": "Nothing"}
    )

    await sign_in(page, user)
    await page.get_by_label("Search messages").fill("nata")
    hit = page.locator("#search-results .hit")
    await expect(hit).to_have_count(1)
    await expect(hit.locator(".hit-title")).to_have_text("Lisbon trip")
    await expect(hit.locator("mark")).to_have_text(["nata"])
    await expect(hit.locator(".snippet")).to_contain_text("<b>pastel</b>")  # text, not markup
    assert await hit.locator(".snippet b").count() == 0

    await hit.click()
    await expect(page.locator("#chat-title")).to_have_text("Lisbon trip")
    found = page.locator("li.message.found")
    await expect(found.locator(".body")).to_have_text("Where is the best <b>pastel</b> de nata?")
    await expect(found).to_be_focused()
    await expect(found.locator(".branch-position")).to_have_text("1 / 2")
    await expect(page.locator("li.message.role-assistant .body")).to_have_text("Try the bakeries.")

    # Escape clears the search and brings the chats back.
    await page.get_by_label("Search messages").press("Escape")
    await expect(page.locator("#search-results")).to_be_hidden()
    await expect(page.locator("#sessions .open")).to_have_count(2)
