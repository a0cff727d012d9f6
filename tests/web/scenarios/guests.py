"""Guests: two people called "alice2" are told apart by a tag beside the name (People
list, chat, tiles), and a guest who signs out is warned, then their private room passes
to its moderator instead of being left with an owner nobody can be."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Locator, Page

from tests.web import harness

SESSION_KEY = "videochat.session.v1"


def name_tag(user_id: str) -> str:
    """The tag the client derives from a user id (ui.js nameTag: FNV-1a, folded to 16 bits)."""
    value = 0x811C9DC5
    for char in user_id:
        value ^= ord(char)
        value = (value * 0x01000193) & 0xFFFFFFFF
    return f"#{(value >> 16) ^ (value & 0xFFFF):04x}"


def _row(page: Page, user_id: str) -> Locator:
    return page.locator(f'[data-testid="participant"][data-user-id="{user_id}"]')


def _names(page: Page, selector: str) -> list[str]:
    """What the names in ``selector`` read as (inner text: what is shown)."""
    texts: list[str] = page.locator(selector).all_inner_texts()
    return [" ".join(text.split()) for text in texts]


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    first = harness.new_page(browser, server.url, errors)
    first.goto("/chat")
    first_id = harness.join_as_guest(first, "alice2")
    first.locator("#room-private").check()
    room_id = harness.create_room(first, "Alices")
    invite = harness.wait_for(
        "the invite link", lambda: first.locator("#invite-link").input_value()
    )

    second = harness.new_page(browser, server.url, errors)
    second.goto(invite)
    second_id = harness.join_as_guest(second, "alice2")
    bob = harness.new_page(browser, server.url, errors)
    bob.goto(invite)
    bob_id = harness.join_as_guest(bob, "bob")
    pages = {"first": first, "second": second, "bob": bob}
    for name, page in pages.items():
        harness.wait_for(
            f"three people in {name}'s list",
            lambda page=page: page.get_by_test_id("participant").count() == 3,
        )
    harness.send_chat(first, "hello from the first")
    harness.send_chat(second, "hello from the second")
    harness.wait_for_chat(list(pages.values()), "hello from the second")
    for name, page in pages.items():
        harness.wait_for(
            f"two remote tiles on {name}'s page",
            lambda page=page: page.locator("#video-grid .tile .tile-name").count() == 3,
            timeout=30,
        )
    seen = {
        name: {
            "people": _names(page, '[data-testid="participant"] .participant-name'),
            "authors": _names(page, ".message-author"),
            "tiles": sorted(_names(page, "#video-grid .tile .tile-name")),
            "whoami": " ".join(page.locator("#whoami-name").inner_text().split()),
        }
        for name, page in pages.items()
    }

    # The owner makes bob a moderator, then signs out: warned, cancels, then confirms.
    _row(first, bob_id).get_by_test_id("participant-promote").click()
    harness.wait_for(
        "bob promoted", lambda: _row(first, bob_id).get_attribute("data-role") == "moderator"
    )
    first.get_by_test_id("sign-out").click()
    dialog = first.get_by_test_id("sign-out-dialog")
    dialog.wait_for(state="visible")
    warning = " ".join(dialog.inner_text().split())
    focused_on_open = first.evaluate("document.activeElement?.dataset.testid ?? null")
    first.get_by_test_id("sign-out-cancel").click()
    dialog.wait_for(state="hidden")
    still_in_room = first.locator('[data-view="room"]').is_visible()
    first.keyboard.press("Escape")  # nothing open: harmless
    first.get_by_test_id("sign-out").click()
    dialog.wait_for(state="visible")
    first.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    after_escape = first.evaluate("window.videochat.user?.id ?? null")
    first.get_by_test_id("sign-out").click()
    first.get_by_test_id("sign-out-confirm").click()
    first.get_by_test_id("guest-name").wait_for(state="visible")
    stored = first.evaluate(f"localStorage.getItem('{SESSION_KEY}')")

    # bob runs the room now: as owner, his row for the other alice2 offers "Make moderator".
    harness.wait_for(
        "the first alice2 gone from bob's list", lambda: _row(bob, first_id).count() == 0
    )
    owner_actions = harness.wait_for(
        "bob's owner actions",
        lambda: _row(bob, second_id).get_by_test_id("participant-promote").count() == 1,
    )
    room = bob.evaluate(
        """async (id) => {
          const { access_token } = JSON.parse(localStorage.getItem('videochat.session.v1'));
          const response = await fetch(`/rooms/${id}`, {
            headers: { Authorization: `Bearer ${access_token}` },
          });
          return response.json();
        }""",
        room_id,
    )
    # Signing in again with the same name is a new guest, outside the private room.
    again_id = harness.join_as_guest(first, "alice2")
    first.goto(f"/chat/rooms/{room_id}")
    harness.wait_for("the knock view", lambda: first.locator('[data-view="knock"]').is_visible())
    return {
        "ids": {"first": first_id, "second": second_id, "bob": bob_id, "again": again_id},
        "tags": {"first": name_tag(first_id), "second": name_tag(second_id)},
        "seen": seen,
        "warning": warning,
        "focused_on_open": focused_on_open,
        "still_in_room_after_cancel": still_in_room,
        "signed_in_after_escape": after_escape,
        "stored_session_after_sign_out": stored,
        "bob_has_owner_actions": owner_actions,
        "room_owner": room.get("owner_id"),
        "room_roles": room.get("roles"),
    }
