"""The chat pane: a visible edit field, its own scroll pinned to the newest message,
older pages on scrolling up, compact grouped messages and safe clickable links."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness


def _edit_field(page: Page, text: str) -> dict[str, Any]:
    """Open the editor on a message: what the field shows and how big it is."""
    harness.message(page, text).get_by_role("button", name="Edit").click()
    field = page.get_by_test_id("message-edit-input")
    box = field.bounding_box()
    return {
        "visible": field.is_visible(),
        "width": box["width"] if box else 0,
        "height": box["height"] if box else 0,
        "value": field.input_value(),
    }


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    harness.join_as_guest(alice, "alice")
    harness.create_room(alice, "Chat pane room")

    harness.send_chat(alice, "a message to edit")
    harness.wait_for_chat([alice], "a message to edit")
    editor = _edit_field(alice, "a message to edit")
    field = alice.get_by_test_id("message-edit-input")
    field.fill("an edited message")
    field.press("Enter")
    harness.wait_for_chat([alice], "an edited message")
    return {"editor": editor, "texts_after_edit": harness.chat_texts(alice)}
