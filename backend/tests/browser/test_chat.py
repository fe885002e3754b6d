"""Chatting in the browser: send, watch the reply grow, stop, regenerate, edit, switch branch."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import sign_in
from tests.support.fake_llm import FakeChatServer, Script

MARKDOWN_REPLY = [
    "Here is a **plan** for Lisbon:\n\n",
    "1. Breakfast at a *pastelaria*\n",
    "2. Tram 28 to the castle\n\n",
    "```python\n",
    "print('olá')\n",
    "```\n",
]


async def test_send_and_watch_the_reply_grow(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    llm.scripts.append(Script(chunks=[f"word{i} " for i in range(40)], delay_s=0.05))
    await sign_in(page, user)
    prompt = page.get_by_label("Message", exact=True)
    await prompt.fill("Hello")
    await prompt.press("Shift+Enter")
    await prompt.type("there")
    assert await prompt.input_value() == "Hello\nthere"  # Shift+Enter adds a line, sends nothing
    await prompt.press("Enter")

    reply = page.locator("li.message.role-assistant").last
    await expect(reply).to_have_attribute("data-status", "streaming")
    await expect(reply.locator(".body")).to_contain_text("word3")
    early = await reply.locator(".body").inner_text()
    await expect(reply.locator(".body")).to_contain_text("word20")
    later = await reply.locator(".body").inner_text()
    assert len(later) > len(early)  # the text grew while the reply streamed
    await expect(reply).to_have_attribute("data-status", "completed")
    await expect(prompt).to_have_value("")

    user_message = page.locator("li.message.role-user").last
    await expect(user_message.locator(".body")).to_have_text("Hello\nthere", use_inner_text=True)
    await expect(page.locator("#sessions .open")).to_have_text(["Hello"])
    sessions = (await api(user).get("/api/sessions/")).json()
    thread = (await api(user).get(f"/api/sessions/{sessions[0]['id']}/thread")).json()
    assert [m["content"] for m in thread] == ["Hello\nthere", "".join(f"word{i} " for i in range(40))]
