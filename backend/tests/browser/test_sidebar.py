"""The sessions sidebar: rename, delete with confirmation, "Load more" through the Link cursor."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.async_api import Dialog, Page, expect

from tests.browser.conftest import sign_in


async def test_rename_and_delete_with_confirmation(
    page: Page, user: str, api: Callable[[str], httpx.AsyncClient]
) -> None:
    client = api(user)
    kept = (await client.post("/api/sessions/", json={"title": "Keep me"})).json()
    doomed = (await client.post("/api/sessions/", json={"title": "Old name"})).json()
    await sign_in(page, user)
    sessions = page.locator("#sessions .open")
    await expect(sessions).to_have_text(["Old name", "Keep me"])

    await page.get_by_label("Actions for Old name").click()
    await page.get_by_role("button", name="Rename").click()
    title = page.get_by_label("New title for Old name")
    await title.fill("New name")
    await title.press("Enter")
    await expect(sessions).to_have_text(["New name", "Keep me"])
    assert (await client.get(f"/api/sessions/{doomed['id']}")).json()["title"] == "New name"

    answers: list[bool] = [False, True]  # first "Cancel", then "OK"

    async def confirm(dialog: Dialog) -> None:
        assert dialog.type == "confirm"
        assert "New name" in dialog.message
        await (dialog.accept() if answers.pop(0) else dialog.dismiss())

    page.on("dialog", confirm)
    for _ in range(2):
        await page.get_by_label("Actions for New name").click()
        await page.get_by_role("button", name="Delete").click()
    await expect(sessions).to_have_text(["Keep me"])
    assert answers == []
    assert (await client.get(f"/api/sessions/{doomed['id']}")).status_code == 404
    assert (await client.get(f"/api/sessions/{kept['id']}")).status_code == 200


async def test_a_branch_switch_moves_the_session_to_the_top(
    page: Page, user: str, api: Callable[[str], httpx.AsyncClient]
) -> None:
    client = api(user)
    document = {
        "format": "agent-stack.session",
        "version": 1,
        "session": {"title": "Branched", "current_message_id": 3},
        "messages": [
            {"id": 1, "role": "user", "content": "Question"},
            {"id": 2, "parent_id": 1, "role": "assistant", "content": "First answer"},
            {"id": 3, "parent_id": 1, "role": "assistant", "content": "Second answer"},
        ],
    }
    assert (await client.post("/api/sessions/import", json=document)).status_code == 201
    assert (await client.post("/api/sessions/", json={"title": "Newer"})).status_code == 201
    await sign_in(page, user)
    sessions = page.locator("#sessions .open")
    await expect(sessions).to_have_text(["Newer", "Branched"])

    await sessions.filter(has_text="Branched").click()
    assistant = page.locator("li.message.role-assistant").last
    await expect(assistant.locator(".body")).to_have_text("Second answer")
    await assistant.get_by_role("button", name="Previous version").click()
    await expect(assistant.locator(".body")).to_have_text("First answer")
    # A branch switch is activity (`updated_at`): the list shows it without a reload.
    await expect(sessions).to_have_text(["Branched", "Newer"])


async def test_load_more_follows_the_cursor(
    page: Page, user: str, api: Callable[[str], httpx.AsyncClient]
) -> None:
    client = api(user)
    for number in range(35):
        await client.post("/api/sessions/", json={"title": f"Chat {number:02d}"})
    await sign_in(page, user)
    sessions = page.locator("#sessions .open")
    await expect(sessions).to_have_count(30)
    await expect(sessions.first).to_have_text("Chat 34")
    await page.get_by_role("button", name="Load more").click()
    await expect(sessions).to_have_count(35)
    await expect(sessions.last).to_have_text("Chat 00")
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()


async def test_pin_and_archive(
    page: Page, user: str, api: Callable[[str], httpx.AsyncClient]
) -> None:
    client = api(user)
    ids = {}
    for title in ("Older", "Middle", "Newest"):
        ids[title] = (await client.post("/api/sessions/", json={"title": title})).json()["id"]
    await sign_in(page, user)
    sessions = page.locator("#sessions .open")
    await expect(sessions).to_have_text(["Newest", "Middle", "Older"])

    await page.get_by_label("Actions for Older").click()
    await page.get_by_role("button", name="Pin", exact=True).click()
    await expect(sessions).to_have_text(["★ Older", "Newest", "Middle"])
    assert (await client.get(f"/api/sessions/{ids['Older']}")).json()["pinned"] is True

    await page.get_by_label("Actions for Middle").click()
    await page.get_by_role("button", name="Archive", exact=True).click()
    await expect(sessions).to_have_text(["★ Older", "Newest"])
    assert (await client.get(f"/api/sessions/{ids['Middle']}")).json()["archived"] is True

    archived = page.get_by_label("Show archived")
    await archived.check()
    await expect(sessions).to_have_text(["Middle"])
    await page.get_by_label("Actions for Middle").click()
    await page.get_by_role("button", name="Unarchive").click()
    await expect(page.locator("#sessions .empty")).to_have_text("No archived chats.")
    await archived.uncheck()
    await expect(sessions).to_have_text(["★ Older", "Newest", "Middle"])

    await page.get_by_label("Actions for Older").click()
    await page.get_by_role("button", name="Unpin").click()
    await expect(sessions.first).not_to_contain_text("★")
    assert (await client.get(f"/api/sessions/{ids['Older']}")).json()["pinned"] is False
