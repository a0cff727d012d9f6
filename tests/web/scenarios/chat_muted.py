"""A muted member's message does not vanish: the composer says why and keeps the text.

Alice (the owner) mutes Bob from the People list. Bob writes and presses Send: the
server refuses the frame (``error`` ``muted``), nobody gets the message, and Bob sees
"You are muted in this room" by the composer with his text still in it. After a
reload the note is there before he types (the ``welcome`` frame says he is muted).
Unmuted, the note goes and the same text is sent.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Locator, Page

from tests.web import harness

TEXT = "can everyone hear me?"


def _row(page: Page, user_id: str) -> Locator:
    return page.locator(f'[data-testid="participant"][data-user-id="{user_id}"]')


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Quiet room")
    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for("bob in alice's list", lambda: _row(alice, bob_id).count() == 1)
    harness.wait_for("alice in bob's list", lambda: _row(bob, alice_id).count() == 1)
    note = bob.get_by_test_id("chat-refusal")
    result["note_before_mute"] = note.is_visible()

    mute = harness.wait_for(
        "the mute action",
        lambda: (
            (button := _row(alice, bob_id).get_by_test_id("participant-mute")).count() and button
        ),
    )
    mute.click()
    harness.wait_for("bob's muted notice", lambda: harness.notice_text(bob, "moderation"))

    harness.send_chat(bob, TEXT)
    harness.wait_for("the note by bob's composer", note.is_visible)
    field = bob.get_by_test_id("chat-input")
    harness.wait_for("the text given back", lambda: field.input_value() == TEXT)
    result["note_after_send"] = note.text_content()
    result["input_after_send"] = field.input_value()
    result["note_is_alert"] = note.get_attribute("role")
    # The note sits right under the composer.
    form_box = bob.locator("#chat-form").bounding_box()
    note_box = note.bounding_box()
    assert form_box and note_box
    result["note_below_composer_px"] = round(note_box["y"] - (form_box["y"] + form_box["height"]))

    # A reload: muted from the start, the note shows before anything is sent.
    bob.reload()
    bob.get_by_test_id("chat-refusal").wait_for(state="visible")
    result["note_after_reload"] = bob.get_by_test_id("chat-refusal").text_content()

    _row(alice, bob_id).get_by_test_id("participant-unmute").click()
    harness.wait_for("the note gone", lambda: not bob.get_by_test_id("chat-refusal").is_visible())
    harness.send_chat(bob, TEXT)
    harness.wait_for_chat([alice, bob], TEXT)
    result["messages_at_alice"] = harness.chat_texts(alice)
    return result
