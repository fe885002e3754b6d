"""Resilience: a reload while a reply streams resumes it with Last-Event-ID, through a refused
first attempt (retried with backoff), and the text ends exactly as stored."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import sign_in, words
from tests.support.fake_llm import FakeChatServer, Script


async def test_reload_mid_stream_resumes_without_gap_or_duplicate(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    llm.scripts.append(Script(chunks=words(120), delay_s=0.04))
    await sign_in(page, user)
    await page.get_by_label("Message", exact=True).fill("A long story, please")
    await page.get_by_label("Message", exact=True).press("Enter")
    reply = page.locator("li.message.role-assistant").last
    await expect(reply.locator(".body")).to_contain_text("w15")
    message_id = await reply.get_attribute("data-id")

    # The first attempt to rejoin the stream after the reload is refused (503, as during a
    # database blip): the page must retry, and then resume where its text ends.
    resumes: list[dict[str, str]] = []

    async def refuse_once(route: Route) -> None:
        resumes.append(route.request.headers)
        if len(resumes) == 1:
            await route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
                body='{"status": 503, "title": "Service Unavailable", "detail": "try later"}',
            )
        else:
            await route.continue_()

    await page.route(f"**/api/messages/{message_id}/stream*", refuse_once)
    assert (await api(user).get(f"/api/messages/{message_id}")).json()["status"] == "streaming"
    await page.reload()

    reply = page.locator(f'li.message[data-id="{message_id}"]')
    await expect(reply).to_have_attribute("data-status", "completed", timeout=20_000)
    stored = (await api(user).get(f"/api/messages/{message_id}")).json()
    assert stored["status"] == "completed"
    assert stored["content"] == "".join(words(120))
    shown = (await reply.locator(".body").inner_text()).strip()
    assert shown == stored["content"].strip()  # no part missing, none twice
    assert len(resumes) >= 2
    resumed_after = resumes[-1].get("last-event-id", "")
    assert resumed_after.isdigit()
    assert int(resumed_after) > 0
    await expect(page.locator("#notice")).to_be_hidden()


async def test_a_dropped_stream_is_resumed_where_it_broke(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    llm.scripts.append(Script(chunks=words(30), delay_s=0.01))

    async def drop_midway(route: Route) -> None:
        # The reply's connection breaks after a few events (the body simply ends there).
        response = await route.fetch()
        events = (await response.body()).split(b"\n\n")
        await route.fulfill(response=response, body=b"\n\n".join(events[:6]) + b"\n\n")

    resumed: list[str] = []
    page.on(
        "request",
        lambda request: (
            resumed.append(request.headers.get("last-event-id", ""))
            if request.url.endswith("/stream")
            else None
        ),
    )
    await sign_in(page, user)
    await page.route("**/api/sessions/*/replies", drop_midway)
    await page.get_by_label("Message", exact=True).fill("Keep going")
    await page.get_by_label("Message", exact=True).press("Enter")
    reply = page.locator("li.message.role-assistant").last
    await expect(reply).to_have_attribute("data-status", "completed")
    stored = (await api(user).get(f"/api/messages/{await reply.get_attribute('data-id')}")).json()
    assert stored["content"] == "".join(words(30))
    assert (await reply.locator(".body").inner_text()).strip() == stored["content"].strip()
    assert len(resumed) == 1
    assert resumed[0].isdigit()
    assert 0 < int(resumed[0]) < len(stored["content"])  # from where it broke, not the start
