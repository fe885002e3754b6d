"""Usable: 375 px wide without sideways scrolling, every control named and reachable by
keyboard, and a first load well under 150 KB."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, Page, Request, expect

from tests.browser.conftest import sign_in
from tests.support.fake_llm import FakeChatServer, Script

FIRST_LOAD_LIMIT = 150 * 1024
ACTIVE_ELEMENT = "document.activeElement.id || document.activeElement.textContent.trim()"

#: Focusable controls that are visible and have no accessible name.
UNNAMED_CONTROLS = """() => [
  ...document.querySelectorAll('button, input, textarea, summary, a[href]')]
  .filter((node) => node.offsetParent !== null)
  .filter((node) => {
    const label = node.getAttribute('aria-label') || node.textContent.trim()
      || (node.labels && [...node.labels].map((l) => l.textContent.trim()).join(''));
    return !label;
  })
  .map((node) => node.outerHTML)"""


@pytest.mark.parametrize("context", [{"width": 375, "height": 740}], indirect=True)
async def test_375_px_wide(page: Page, user: str, llm: FakeChatServer) -> None:
    long_line = "x" * 200
    reply_text = f"A long line:\n\n```\n{long_line}\n```\n\nand a {long_line}"
    llm.scripts.append(Script(chunks=[reply_text]))
    await sign_in(page, user)
    prompt = page.get_by_label("Message", exact=True)
    await prompt.fill("Show me a wide code block")
    await prompt.press("Enter")
    reply = page.locator("li.message.role-assistant").last
    await expect(reply).to_have_attribute("data-status", "completed")

    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    send, toggle = page.get_by_role("button", name="Send"), page.locator("#toggle-sidebar")
    for control in (prompt, send, toggle):
        await expect(control).to_be_visible()
        box = await control.bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["x"] + box["width"] <= 375, box
    # The sidebar is a panel behind the "Chats" button.
    await expect(page.get_by_role("button", name="New chat")).to_be_hidden()
    await page.locator("#toggle-sidebar").click()
    await expect(page.get_by_role("button", name="New chat")).to_be_visible()
    await expect(page.locator("#sessions .open")).to_have_text(["Show me a wide code block"])
    assert await page.evaluate(UNNAMED_CONTROLS) == []
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="New chat")).to_be_hidden()
    await expect(page.locator("#toggle-sidebar")).to_be_focused()


async def test_keyboard_only(page: Page, user: str, llm: FakeChatServer) -> None:
    llm.scripts.append(Script(chunks=["Typed without a mouse."]))
    await page.goto("/")
    await expect(page.get_by_label("Your name")).to_be_focused()
    await page.keyboard.type(user)
    await page.keyboard.press("Enter")
    prompt = page.get_by_label("Message", exact=True)
    await expect(prompt).to_be_focused()
    await page.keyboard.type("Hello from the keyboard")
    await page.keyboard.press("Enter")
    await expect(page.locator("li.message.role-assistant .body")).to_have_text(
        "Typed without a mouse."
    )
    # Tab from the top of the page reaches the sidebar, the chat's actions and the composer,
    # and the focused control is visibly outlined.
    await page.locator("body").focus()
    reached: list[str] = []
    for _ in range(15):
        await page.keyboard.press("Tab")
        reached.append(await page.evaluate(ACTIVE_ELEMENT))
        if reached[-1] == "prompt":
            outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none"
            break
    assert {"new-chat", "search", "Regenerate", "prompt"} <= set(reached), reached
    assert await page.evaluate(UNNAMED_CONTROLS) == []


async def test_first_load_is_small(context: BrowserContext) -> None:
    fetched: list[Request] = []
    page = await context.new_page()
    page.on("requestfinished", lambda request: fetched.append(request))
    await page.goto("/", wait_until="networkidle")
    await expect(page.get_by_label("Your name")).to_be_visible()
    total = 0
    for request in fetched:
        sizes = await request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    urls = {request.url.removeprefix(page.url.rstrip("/")) for request in fetched}
    assert {"/", "/static/app/app.css", "/static/app/js/main.js", "/config.json"} <= urls
    assert all(request.url.startswith(page.url.rstrip("/")) for request in fetched)  # one origin
    print(f"first load: {len(fetched)} requests, {total} bytes")
    assert total <= FIRST_LOAD_LIMIT, total


async def test_light_and_dark_follow_the_system(page: Page, user: str) -> None:
    await sign_in(page, user)
    luminance = """() => {
      const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number);
      return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    }"""
    await page.emulate_media(color_scheme="light")
    assert await page.evaluate(luminance) > 0.8
    await page.emulate_media(color_scheme="dark")
    assert await page.evaluate(luminance) < 0.2
