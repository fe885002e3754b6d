"""Chatting in the browser: send, watch the reply grow, stop, regenerate, edit, switch branch."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import sign_in, words
from tests.support.fake_llm import Call, FakeChatServer, Script

#: `UPDATE_DOCS_SCREENSHOT=1 make test` refreshes the README's picture of the page from this run.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "chat.png"

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
    llm.scripts.append(Script(chunks=words(40, "word"), delay_s=0.05))
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
    assert [m["content"] for m in thread] == ["Hello\nthere", "".join(words(40, "word"))]


async def test_markdown_replies_are_rendered(
    page: Page, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient], user: str
) -> None:
    client = api(user)
    await client.post("/api/sessions/", json={"title": "Weekend in Porto"})
    await client.post("/api/sessions/", json={"title": "Tool calling demo"})
    llm.scripts.append(Script(chunks=MARKDOWN_REPLY, delay_s=0.02))
    await sign_in(page, user)
    await page.get_by_label("Message", exact=True).fill("Plan a day in Lisbon")
    await page.get_by_label("Message", exact=True).press("Enter")
    reply = page.locator("li.message.role-assistant").last
    await expect(reply).to_have_attribute("data-status", "completed")
    body = reply.locator(".body")
    await expect(body.locator("strong")).to_have_text("plan")
    await expect(body.locator("em")).to_have_text("pastelaria")
    await expect(body.locator("ol > li")).to_have_text(
        ["Breakfast at a pastelaria", "Tram 28 to the castle"]
    )
    await expect(body.locator("pre > code[data-lang=python]")).to_have_text("print('olá')")
    await expect(page.locator("#sessions .open")).to_have_count(3)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        await page.screenshot(path=DOCS_SCREENSHOT)


async def test_stop_keeps_the_partial_text(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    llm.scripts.append(Script(chunks=words(200), delay_s=0.05))
    await sign_in(page, user)
    await page.get_by_label("Message", exact=True).fill("Tell me everything")
    await page.get_by_role("button", name="Send").click()
    reply = page.locator("li.message.role-assistant").last
    await expect(reply.locator(".body")).to_contain_text("w10")
    await page.get_by_role("button", name="Stop").click()

    await expect(reply).to_have_attribute("data-status", "cancelled")
    await expect(reply.locator(".status")).to_have_text("stopped")
    await expect(page.get_by_role("button", name="Send")).to_be_visible()
    stored = (await api(user).get(f"/api/messages/{await reply.get_attribute('data-id')}")).json()
    assert stored["status"] == "cancelled"
    assert "w10" in stored["content"]
    assert "w199" not in stored["content"]
    assert (await reply.locator(".body").inner_text()).strip() == stored["content"].strip()


async def test_regenerate_edit_and_switch_branches(
    page: Page, user: str, llm: FakeChatServer
) -> None:
    for text in ("First answer", "Second answer", "Third answer"):
        llm.scripts.append(Script(chunks=[text]))
    await sign_in(page, user)
    await page.get_by_label("Message", exact=True).fill("Question")
    await page.get_by_label("Message", exact=True).press("Enter")
    assistant = page.locator("li.message.role-assistant").last
    await expect(assistant.locator(".body")).to_have_text("First answer")
    await expect(assistant).to_have_attribute("data-status", "completed")

    await assistant.get_by_role("button", name="Regenerate").click()
    await expect(assistant.locator(".body")).to_have_text("Second answer")
    await expect(assistant.locator(".branch-position")).to_have_text("2 / 2")
    await assistant.get_by_role("button", name="Previous version").click()
    await expect(assistant.locator(".body")).to_have_text("First answer")
    await expect(assistant.locator(".branch-position")).to_have_text("1 / 2")
    await assistant.get_by_role("button", name="Next version").click()
    await expect(assistant.locator(".body")).to_have_text("Second answer")

    question = page.locator("li.message.role-user").first
    await question.get_by_role("button", name="Edit").click()
    editor = page.get_by_label("Edit message")
    await editor.fill("Edited question")
    await page.get_by_role("button", name="Save and send").click()
    await expect(page.locator("li.message.role-user .body")).to_have_text(["Edited question"])
    await expect(assistant.locator(".body")).to_have_text("Third answer")
    await expect(page.locator("li.message.role-user .branch-position")).to_have_text("2 / 2")

    # Back to the original question: its branch shows its newest answer.
    question = page.locator("li.message.role-user")
    await question.get_by_role("button", name="Previous version").click()
    await expect(page.locator("li.message.role-user .body")).to_have_text(["Question"])
    await expect(assistant.locator(".body")).to_have_text("Second answer")
    await expect(assistant.locator(".branch-position")).to_have_text("2 / 2")
    # The choice is stored: a reload shows the same branch.
    await page.reload()
    await expect(page.locator("li.message .body")).to_have_text(["Question", "Second answer"])


async def test_a_refused_reply_is_explained_and_can_be_retried(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    client = api(user)
    session = (await client.post("/api/sessions/", json={"title": "Busy"})).json()
    await sign_in(page, user)
    await page.locator("#sessions .open", has_text="Busy").click()
    await expect(page.locator("#chat-title")).to_have_text("Busy")

    # Another tab starts a slow reply in the same chat; this one then tries to send.
    llm.scripts.append(Script(chunks=words(30), delay_s=0.05))
    llm.scripts.append(Script(chunks=["Now it is my turn"]))
    async with client.stream(
        "POST", f"/api/sessions/{session['id']}/replies", json={"content": "Other tab"}
    ) as other:
        assert other.status_code == 200
        await page.get_by_label("Message", exact=True).fill("Mine")
        await page.get_by_role("button", name="Send").click()
        notice = page.locator("#notice")
        await expect(notice).to_contain_text("Not now:")
        await expect(notice).to_contain_text("reply")
        async for _ in other.aiter_bytes():
            pass
    await notice.get_by_role("button", name="Retry").click()
    await expect(page.locator("li.message.role-assistant .body").last).to_have_text(
        "Now it is my turn"
    )
    await expect(notice).to_be_hidden()


async def test_thumbs_up_and_down(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    llm.scripts.append(Script(chunks=["Rate me."]))
    await sign_in(page, user)
    await page.get_by_label("Message", exact=True).fill("Say something")
    await page.get_by_label("Message", exact=True).press("Enter")
    reply = page.locator("li.message.role-assistant").last
    await expect(reply).to_have_attribute("data-status", "completed")
    url = f"/api/messages/{await reply.get_attribute('data-id')}"
    good, bad = reply.get_by_label("Good reply"), reply.get_by_label("Bad reply")

    await good.click()
    await expect(good).to_have_attribute("aria-pressed", "true")
    await expect(bad).to_have_attribute("aria-pressed", "false")
    assert (await api(user).get(url)).json()["feedback"]["rating"] == "up"
    await bad.click()
    await expect(bad).to_have_attribute("aria-pressed", "true")
    await expect(good).to_have_attribute("aria-pressed", "false")
    assert (await api(user).get(url)).json()["feedback"]["rating"] == "down"
    await page.reload()  # the stored rating is shown
    await expect(bad).to_have_attribute("aria-pressed", "true")
    await bad.click()  # pressing it again takes it back
    await expect(bad).to_have_attribute("aria-pressed", "false")
    assert (await api(user).get(url)).json()["feedback"] is None


@pytest.mark.parametrize(
    ("status", "words_shown"),
    [
        (429, "Too many requests. Try again in 7 s."),
        (503, "The service is unavailable right now. Try again in 7 s."),
    ],
)
async def test_busy_answers_are_said_in_words(
    page: Page, user: str, llm: FakeChatServer, status: int, words_shown: str
) -> None:
    refused: list[str] = []

    async def refuse_once(route: Route) -> None:
        if refused:
            await route.continue_()
            return
        refused.append(route.request.url)
        await route.fulfill(
            status=status,
            headers={"Retry-After": "7", "Content-Type": "application/problem+json"},
            body=f'{{"status": {status}, "title": "Busy", "detail": "busy"}}',
        )

    llm.scripts.append(Script(chunks=["Made it."]))
    await sign_in(page, user)
    await page.route("**/api/sessions/*/replies", refuse_once)
    await page.get_by_label("Message", exact=True).fill("Are you there?")
    await page.get_by_label("Message", exact=True).press("Enter")
    notice = page.locator("#notice")
    await expect(notice).to_contain_text(words_shown)
    await expect(page.get_by_label("Message", exact=True)).to_have_value("Are you there?")
    await notice.get_by_role("button", name="Retry").click()
    await expect(page.locator("li.message.role-assistant .body")).to_have_text("Made it.")
    await expect(page.get_by_label("Message", exact=True)).to_have_value("")
    assert len(refused) == 1


async def test_tool_calls_and_results_are_collapsible(
    page: Page, user: str, llm: FakeChatServer, api: Callable[[str], httpx.AsyncClient]
) -> None:
    llm.scripts.append(
        Script(
            chunks=[],
            tool_calls=[Call(id="call_1", name="get_weather", arguments='{"city": "Lisbon"}')],
        )
    )
    await sign_in(page, user)
    await page.get_by_label("Message", exact=True).fill("Weather in Lisbon?")
    await page.get_by_label("Message", exact=True).press("Enter")
    call = page.locator("li.message.role-assistant details.tool")
    await expect(call.locator("summary")).to_have_text("Tool call: get_weather")
    assert await call.get_attribute("open") is None  # collapsed until asked
    await expect(call.locator("pre")).to_be_hidden()
    await call.locator("summary").click()
    await expect(call.locator("pre")).to_contain_text('"city": "Lisbon"')

    session_id = int((await page.evaluate("location.hash")).split("=")[1])
    client = api(user)
    posted = await client.post(
        f"/api/messages/?session_id={session_id}",
        json={"role": "tool", "tool_call_id": "call_1", "content": "18 °C, sunny"},
    )
    assert posted.status_code == 201, posted.text
    await page.reload()
    result = page.locator("li.message.role-tool details.tool-result")
    await expect(result.locator("summary")).to_have_text("Tool result (call_1)")
    await result.locator("summary").click()
    await expect(result.locator("pre")).to_have_text("18 °C, sunny")

    llm.scripts.append(Script(chunks=["It is sunny in Lisbon."]))
    await page.get_by_role("button", name="Continue").click()
    answer = page.locator("li.message.role-assistant").last
    await expect(answer.locator(".body")).to_have_text("It is sunny in Lisbon.")
    assert llm.requests[-1].body["messages"][-1]["role"] == "tool"  # the model saw the result
