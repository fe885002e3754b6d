"""Message text is shown, never run: HTML and `javascript:` links in Markdown stay text."""

from __future__ import annotations

from playwright.async_api import Dialog, Page, expect

from tests.browser.conftest import sign_in
from tests.support.fake_llm import FakeChatServer, Script

PAYLOAD = (
    "<img src=x onerror=alert(1)> <img src=x onerror=\"window.__xss='img'\">\n\n"
    "[click me](javascript:window.__xss='link') and [also](JaVaScRiPt:alert(2))\n\n"
    "<script>window.__xss='script'</script> <a href=\"javascript:alert(3)\">raw</a>\n\n"
    "[safe link](https://example.com/docs)"
)


async def test_html_and_javascript_links_are_shown_as_text(
    page: Page, user: str, llm: FakeChatServer
) -> None:
    dialogs: list[str] = []

    async def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", record)
    llm.scripts.append(Script(chunks=[PAYLOAD[:40], PAYLOAD[40:]]))  # split mid-tag, as streams do
    await sign_in(page, user)
    await page.get_by_label("Message", exact=True).fill(PAYLOAD)
    await page.get_by_label("Message", exact=True).press("Enter")
    reply = page.locator("li.message.role-assistant").last
    await expect(reply).to_have_attribute("data-status", "completed")

    for message in (page.locator("li.message.role-user").last, reply):
        body = message.locator(".body")
        await expect(body).to_contain_text("<img src=x onerror=alert(1)>")
        await expect(body).to_contain_text("[click me](javascript:window.__xss='link')")
        await expect(body).to_contain_text("<script>window.__xss='script'</script>")
        assert await body.locator("img, script, iframe").count() == 0
        links = body.locator("a")
        await expect(links).to_have_count(1)
        assert await links.get_attribute("href") == "https://example.com/docs"
        assert await links.get_attribute("rel") == "noopener noreferrer nofollow"
        await body.get_by_text("click me", exact=False).first.click()

    assert await page.evaluate("window.__xss") is None
    assert dialogs == []
    # Nothing else ran either: the page's own policy forbids inline script.
    csp = await page.evaluate("fetch('/').then((r) => r.headers.get('content-security-policy'))")
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
