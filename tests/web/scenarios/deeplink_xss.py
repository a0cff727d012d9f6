"""A room's address opens it after choosing a name; markup typed in the chat stays text.

The second person uses a phone-sized window, which also checks that the room fits.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

PAYLOAD = "<img src=x onerror=alert(1)>"


def _layout(page: Page) -> dict[str, Any]:
    layout: dict[str, Any] = page.evaluate(
        """() => ({
          overflowing: document.documentElement.scrollWidth > window.innerWidth + 1,
          controls_visible: ['toggle-mic', 'toggle-camera', 'share-screen', 'leave-call']
            .every((id) => { const r = document.getElementById(id).getBoundingClientRect();
                             return r.width > 0 && r.height > 0; }),
        })"""
    )
    return layout


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Deep link room")
    path = f"/chat/rooms/{room_id}"

    bob = harness.new_page(browser, server.url, errors, width=390, height=844)
    bob.goto(path)
    bob.get_by_test_id("guest-name").wait_for(state="visible")
    url_before_name = bob.url
    bob_id = harness.join_as_guest(bob, "bob")
    title = harness.wait_for(
        "the room to open",
        lambda: (text := bob.locator("#room-title").text_content()) != "Joining…" and text,
    )
    harness.wait_for_media(bob, [alice_id])
    harness.wait_for_media(alice, [bob_id])

    harness.send_chat(bob, PAYLOAD)
    harness.wait_for_chat([alice, bob], PAYLOAD)
    rendered = {
        name: page.evaluate(
            """() => ({
              images: document.querySelectorAll('img').length,
              in_messages: document.querySelectorAll(
                '#message-list img, #message-list [onerror]').length,
              text: [...document.querySelectorAll('[data-testid="chat-message"] .message-content')]
                .map((node) => node.textContent),
            })"""
        )
        for name, page in {"alice": alice, "bob": bob}.items()
    }
    return {
        "room_id": room_id,
        "path": path,
        "url_before_name": url_before_name,
        "url_in_room": bob.url,
        "title": title,
        "rendered": rendered,
        "phone_layout": _layout(bob),
    }
