"""A public room's link is one click away; Leave says so and Rejoin goes straight back.

Alice copies the link of her public room (read back from the clipboard, with the
"Link copied" feedback), leaves ("You left <room>" with Rejoin), and Rejoin puts her
back in the call without the pre-join screen. A reload of the tab in the call goes
straight back in too; opening the room anew (from the room list) shows it again. The
room list shows its newest answer: an older one arriving late does not drop a room.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

VIEW_JS = "() => document.querySelector('main [data-view]:not([hidden])')?.dataset.view ?? null"


def _view(page: Page) -> str | None:
    view: str | None = page.evaluate(VIEW_JS)
    return view


def _room_names(page: Page) -> list[str]:
    names: list[str] = page.get_by_test_id("room-link").all_text_contents()
    return names


def _tiles(page: Page) -> int:
    count: int = page.locator("#video-grid .tile").count()
    return count


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    alice.goto("/chat")
    harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Open room")
    harness.wait_for("alice's camera", lambda: _tiles(alice) >= 1)

    button = alice.get_by_test_id("copy-link")
    copy = {"visible": button.is_visible(), "name": button.inner_text().strip()}
    button.click()
    copy["feedback"] = harness.wait_for(
        "the copied feedback", lambda: alice.get_by_test_id("copy-status").text_content()
    )
    copy["clipboard"] = alice.evaluate("navigator.clipboard.readText()")
    copy["live_region"] = alice.get_by_test_id("copy-status").get_attribute("aria-live")

    alice.get_by_test_id("leave-call").click()
    harness.wait_for("the left screen", lambda: _view(alice) == "error")
    left = {
        "title": alice.locator("#error-title").text_content(),
        "rejoin": alice.get_by_test_id("rejoin").is_visible(),
        "tiles": _tiles(alice),
    }
    alice.get_by_test_id("rejoin").click()
    rejoined_view = harness.wait_for("back in the room", lambda: _view(alice) == "room" and "room")
    harness.wait_for("alice's camera again", lambda: _tiles(alice) >= 1)

    alice.reload()
    harness.wait_for("the room after a reload", lambda: _tiles(alice) >= 1)
    reloaded_view = _view(alice)

    # The room list: a Refresh answered before bob's new room, arriving after the next
    # Refresh's answer (which has it), does not take it off the list.
    alice.goto("/chat")
    link = alice.locator(f'[data-testid="room-link"][data-room-id="{room_id}"]')
    harness.wait_for("the room list", lambda: link.count() == 1)
    harness.hold_next_answer(alice, "/rooms$")
    alice.locator("#refresh-rooms").click()
    harness.wait_for("the first Refresh answered", lambda: harness.answer_held(alice))
    bob = harness.new_page(browser, server.url, errors)
    bob.goto("/chat")
    harness.join_as_guest(bob, "bob")
    harness.create_room(bob, "Second room", join=False)
    alice.locator("#refresh-rooms").click()
    harness.wait_for("bob's room listed", lambda: "Second room" in _room_names(alice))
    harness.release_held_answer(alice)
    listed = _room_names(alice)

    # From the room list: the pre-join screen again.
    link.click()
    harness.wait_for("the pre-join screen", lambda: _view(alice) == "prejoin")
    return {
        "room_id": room_id,
        "url": f"{server.url}/chat/rooms/{room_id}",
        "copy": copy,
        "left": left,
        "rejoined_view": rejoined_view,
        "reloaded_view": reloaded_view,
        "listed": listed,
        "list_busy": alice.locator("#room-list").get_attribute("aria-busy"),
        "reopened_view": _view(alice),
    }
