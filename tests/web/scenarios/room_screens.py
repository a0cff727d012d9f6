"""Clear screens instead of a room: not found, banned (also on reopening the link, with
no camera and no reconnect loop), kicked, and left with a Rejoin button."""

from __future__ import annotations

import time
import uuid
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness
from tests.web.scenarios.moderation import MODERATE_JS

# What the page shows and does: the screen, and whether any camera or socket is on.
STATE_JS = """
() => {
  const screen = document.querySelector('[data-view="error"]');
  return {
    screen: screen.hidden ? null : screen.dataset.reason ?? 'unnamed',
    title: document.getElementById('error-title').textContent,
    text: document.getElementById('error-text').textContent,
    knock_shown: !document.querySelector('[data-view="knock"]').hidden,
    room_shown: !document.querySelector('[data-view="room"]').hidden,
    rejoin_shown: document.getElementById('rejoin')?.hidden === false,
    status: document.getElementById('connection-status').textContent,
    tiles: document.querySelectorAll('#video-grid .tile').length,
    live_tracks: window.__tracks.filter((track) => track.readyState === 'live').length,
    sockets_open: window.__sockets.filter((ws) => ws.readyState <= 1).length,
    url: location.pathname,
  };
}
"""

# Record every camera track and room socket the page makes (before its scripts run).
RECORD_JS = """
window.__tracks = [];
window.__sockets = [];
const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
  const stream = await getUserMedia(constraints);
  window.__tracks.push(...stream.getTracks());
  return stream;
};
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    window.__sockets.push(this);
  }
};
"""


def _state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(STATE_JS)
    return state


def _screen(page: Page, reason: str) -> dict[str, Any]:
    """Wait for the screen with this reason; what the page shows then."""
    found: dict[str, Any] = harness.wait_for(
        f"the {reason} screen",
        lambda: (state := _state(page))["screen"] == reason and state,
        timeout=15,
    )
    return found


def _person(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> Page:
    page = harness.new_page(browser, server.url, errors)
    page.add_init_script(RECORD_JS)
    return page


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = _person(browser, server, errors)
    alice.goto("/chat")
    harness.join_as_guest(alice, "alice")

    # A link that is not a room at all, and a well-formed id of no room.
    alice.goto("/chat/rooms/not-a-room")
    bad_link = _screen(alice, "not-found")
    alice.goto(f"/chat/rooms/{uuid.uuid4()}")
    harness.wait_for("the knock view", lambda: _state(alice)["knock_shown"])
    alice.get_by_test_id("knock-ask").click()
    unknown_id = _screen(alice, "not-found")

    alice.goto("/chat")
    room_id = harness.create_room(alice, "Screens room")
    bob = _person(browser, server, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for("bob's camera", lambda: _state(bob)["tiles"] >= 1)

    # Banned while in the room: the banned screen, nothing left running.
    ban_status = alice.evaluate(MODERATE_JS, [room_id, bob_id, "ban"])
    banned = _screen(bob, "banned")
    time.sleep(2)  # no reconnect attempts
    banned_later = _state(bob)

    # Reopening the link: the banned screen again, before any camera or socket.
    bob.goto(f"/chat/rooms/{room_id}")
    reopened = _screen(bob, "banned")
    time.sleep(2)
    reopened_later = _state(bob)

    # Kicked (close code 4003, not banned).
    carol = _person(browser, server, errors)
    carol.goto(f"/chat/rooms/{room_id}")
    carol_id = harness.join_as_guest(carol, "carol")
    harness.wait_for("carol's camera", lambda: _state(carol)["tiles"] >= 1)
    # A member (her socket admitted) before the kick: a kick of a non-member is a 404.
    harness.wait_for(
        "carol in alice's people list",
        lambda: alice.locator(f'[data-testid="participant"][data-user-id="{carol_id}"]').count(),
    )
    kick_status = alice.evaluate(MODERATE_JS, [room_id, carol_id, "kick"])
    kicked = _screen(carol, "kicked")

    # Alice leaves: a "you left" screen with Rejoin, which brings her back.
    alice.get_by_test_id("leave-call").click()
    left = _screen(alice, "left")
    time.sleep(1)
    left_later = _state(alice)
    alice.get_by_test_id("rejoin").click()
    harness.wait_for("alice back in the room", lambda: _state(alice)["room_shown"])
    harness.wait_for("alice's camera again", lambda: _state(alice)["tiles"] >= 1)
    rejoined = _state(alice)

    return {
        "bad_link": bad_link,
        "unknown_id": unknown_id,
        "ban_status": ban_status,
        "banned": banned,
        "banned_later": banned_later,
        "reopened": reopened,
        "reopened_later": reopened_later,
        "kick_status": kick_status,
        "kicked": kicked,
        "left": left,
        "left_later": left_later,
        "rejoined": rejoined,
        "room_path": f"/chat/rooms/{room_id}",
    }
