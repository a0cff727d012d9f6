"""A walk through every view of the web client, calling ``visit(name, page)`` at each.

Shared by the accessibility scenario (axe-core and the keyboard check on each view) and
``python -m tests.web.screenshots`` (a picture of each view, desktop and phone), so both
see the same views in the same states:

login, pre-join (preview and devices), room (alone, camera on), call (two people), videos
(the library view), live (the Go live panel), sign-out (a guest's warning), banned, lobby,
not-found and left.
"""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Browser, Page

from tests.web import harness

Visit = Callable[[str, Page], None]
VIEWS = (
    "login",
    "prejoin",
    "room",
    "call",
    "videos",
    "live",
    "sign-out",
    "banned",
    "lobby",
    "left",
    "not-found",
)


def _row_button(page: Page, user_id: str, testid: str) -> None:
    row = page.locator(f'[data-testid="participant"][data-user-id="{user_id}"]')
    row.get_by_test_id(testid).click()


def _screen(page: Page, reason: str) -> None:
    harness.wait_for(
        f"the {reason} screen",
        lambda: page.locator(f'[data-view="error"][data-reason="{reason}"]').is_visible(),
    )


def tour(
    browser: Browser,
    server: harness.ServerProcess,
    errors: list[str],
    visit: Visit,
    *,
    width: int = 1366,
    height: int = 800,
) -> None:
    """Drive three people through every view; ``visit`` sees each once, in ``VIEWS`` order."""

    def person() -> Page:
        return harness.new_page(
            browser, server.url, errors, width=width, height=height, bypass_csp=True
        )

    alice = person()
    alice.goto("/chat")
    alice.get_by_test_id("guest-name").wait_for(state="visible")
    visit("login", alice)

    harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Team standup", join=False)
    alice.get_by_test_id("prejoin").wait_for(state="visible")
    visit("prejoin", alice)
    harness.join_call(alice)
    harness.wait_for(
        "alice's camera", lambda: alice.locator("#video-grid .tile video").count() >= 1
    )
    harness.wait_for("the chat", lambda: not alice.get_by_test_id("chat-send").is_disabled())
    harness.send_chat(alice, "Morning! Agenda: https://example.org/agenda")
    harness.wait_for_chat([alice], "Morning! Agenda: https://example.org/agenda")
    visit("room", alice)

    bob = person()
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    alice_id = harness.wait_for("alice's id", lambda: alice.evaluate("window.videochat.user?.id"))
    harness.wait_for_media(alice, [bob_id], timeout=30)
    harness.wait_for_media(bob, [alice_id], timeout=30)
    harness.send_chat(bob, "Hi all, can you hear me?")
    harness.wait_for_chat([alice, bob], "Hi all, can you hear me?")
    visit("call", alice)

    alice.get_by_test_id("tab-videos").click()
    alice.get_by_test_id("videos-panel").wait_for(state="visible")
    visit("videos", alice)
    alice.get_by_test_id("tab-call").click()

    # On a phone the sidebar (people, then going live) is the People panel.
    show_people = alice.get_by_test_id("show-people")
    if show_people.is_visible():
        show_people.click()
    alice.get_by_test_id("go-live").click()
    alice.get_by_test_id("live-title").wait_for(state="visible")
    alice.get_by_test_id("live-title").scroll_into_view_if_needed()
    visit("live", alice)

    bob.get_by_test_id("sign-out").click()
    bob.get_by_test_id("sign-out-dialog").wait_for(state="visible")
    visit("sign-out", bob)
    bob.get_by_test_id("sign-out-cancel").click()

    _row_button(alice, bob_id, "participant-ban")
    _screen(bob, "banned")
    visit("banned", bob)

    carol = person()
    carol.goto("/chat")
    harness.join_as_guest(carol, "carol")
    harness.wait_for("the room list", lambda: carol.get_by_test_id("room-link").count() >= 1)
    visit("lobby", carol)

    alice.get_by_test_id("leave-call").click()
    _screen(alice, "left")
    visit("left", alice)

    alice.goto("/chat/rooms/no-such-room")
    _screen(alice, "not-found")
    visit("not-found", alice)
