"""Chat between two pages, in order; a reload comes back to the call and the history."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser

from tests.web import harness

MESSAGES = [
    ("alice", "hello from alice"),
    ("bob", "hi alice, bob here"),
    ("alice", "a third message"),
    ("bob", "line one\nline two"),
]


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Chat room")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for_media(alice, [bob_id])
    harness.wait_for_media(bob, [alice_id])

    pages = {"alice": alice, "bob": bob}
    for author, text in MESSAGES:
        harness.send_chat(pages[author], text)
        # Each message seen everywhere before the next one: the order is then defined.
        harness.wait_for_chat([alice, bob], text)
    before_reload = {name: harness.chat_texts(page) for name, page in pages.items()}

    # Alice edits her third message, bob deletes his second: both pages follow.
    harness.message(alice, "a third message").get_by_role("button", name="Edit").click()
    editor = alice.locator(".message-edit textarea")
    editor.fill("a third message, edited")
    editor.press("Enter")
    harness.message(bob, "hi alice, bob here").get_by_role("button", name="Delete").click()
    harness.wait_for_chat([alice, bob], "a third message, edited")
    harness.wait_for_chat([alice, bob], "Message deleted")
    after_edits = {name: harness.chat_texts(page) for name, page in pages.items()}
    edited_marks = {
        name: page.locator(".message-edited:not([hidden])").count() for name, page in pages.items()
    }

    # Bob reacts to alice's first message from the picker; alice adds hers on the chip.
    first = harness.message(bob, MESSAGES[0][1])
    first.get_by_test_id("add-reaction").click()
    first.get_by_role("button", name="React with 🎉").click()
    chip = harness.message(alice, MESSAGES[0][1]).get_by_test_id("message-reaction")
    harness.wait_for("bob's reaction on alice's page", lambda: chip.text_content() == "🎉 1")
    alice_pressed_before = chip.get_attribute("aria-pressed")
    chip.click()
    bob_chip = harness.message(bob, MESSAGES[0][1]).get_by_test_id("message-reaction")
    # The room hears alice's reaction on both pages, in no set order between them.
    for page, shown in (("bob's", bob_chip), ("alice's", chip)):
        harness.wait_for(
            f"both reactions on {page} page", lambda shown=shown: shown.text_content() == "🎉 2"
        )
    reactions = {
        "alice_pressed_before": alice_pressed_before,
        "alice_after": (chip.text_content(), chip.get_attribute("aria-pressed")),
        "bob_after": (bob_chip.text_content(), bob_chip.get_attribute("aria-pressed")),
    }

    # Typing shows on the other page while bob types.
    bob.get_by_test_id("chat-input").fill("bob is writing")
    typing = harness.wait_for(
        "the typing indicator",
        lambda: alice.locator("#typing-indicator").text_content() or None,
        timeout=5,
    )
    bob.get_by_test_id("chat-input").fill("")

    reloaded_at = time.monotonic()
    bob.reload()
    harness.wait_for(
        "the history after the reload",
        lambda: len(harness.chat_texts(bob)) >= len(MESSAGES),
    )
    history_after_reload = harness.chat_texts(bob)
    reactions["bob_after_reload"] = (
        harness.message(bob, MESSAGES[0][1]).get_by_test_id("message-reaction").text_content()
    )
    harness.wait_for_media(bob, [alice_id])
    harness.wait_for_media(alice, [bob_id])
    rejoin_seconds = round(time.monotonic() - reloaded_at, 2)

    harness.send_chat(alice, "after the reload")
    harness.wait_for_chat([bob], "after the reload")
    screenshot = harness.save_screenshot(bob, "chat-after-reload")

    return {
        "sent": [text for _, text in MESSAGES],
        "before_reload": before_reload,
        "after_edits": after_edits,
        "edited_marks": edited_marks,
        "typing_indicator": typing,
        "reactions": reactions,
        "history_after_reload": history_after_reload,
        "after_reload_bob": harness.chat_texts(bob),
        "bob_url_after_reload": bob.url,
        "room_id": room_id,
        "rejoin_seconds": rejoin_seconds,
        "screenshot": screenshot,
        "peers_after_reload": {
            "alice": harness.peer_report(alice),
            "bob": harness.peer_report(bob),
        },
        "pictures_after_reload": {"alice_sees_bob": harness.picture_check(alice, bob_id)},
        "timings_after_reload": {"bob": harness.timings(bob)},
    }
