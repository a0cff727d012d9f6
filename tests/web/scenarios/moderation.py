"""A moderator mutes someone (their media goes off) and then removes them (no way back).

The owner's actions go through the HTTP API from the owner's own page; what is
checked is how the pages react to the ``moderation`` frames and the 4003 close.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

# A moderation request with the page's own token.
MODERATE_JS = """
async ([roomId, userId, action]) => {
  const { access_token: token } = JSON.parse(localStorage.getItem('videochat.session.v1'));
  const response = await fetch(`/rooms/${roomId}/members/${userId}/${action}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
  });
  return response.status;
}
"""


def _participant(page: Page, user: str) -> dict[str, str] | None:
    state: dict[str, str] | None = page.evaluate(
        """(user) => {
          const item = document.querySelector(
            `[data-testid="participant"][data-user-id="${user}"]`);
          return item ? { ...item.dataset } : null;
        }""",
        user,
    )
    return state


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Moderated room")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for_media(alice, [bob_id])
    harness.wait_for_media(bob, [alice_id])

    mute_status = alice.evaluate(MODERATE_JS, [room_id, bob_id, "mute"])
    notice = harness.wait_for("bob's muted notice", lambda: harness.notice_text(bob, "moderation"))
    harness.wait_for(
        "bob shown with everything off",
        lambda: (
            (seen := _participant(alice, bob_id))
            and seen["audio"] == "false"
            and seen["video"] == "false"
        ),
    )
    muted = {
        "status": mute_status,
        "notice": notice,
        "seen_by_alice": _participant(alice, bob_id),
        "bob_controls_disabled": {
            key: bob.get_by_test_id(key).is_disabled()
            for key in ("toggle-mic", "toggle-camera", "share-screen")
        },
    }

    kick_status = alice.evaluate(MODERATE_JS, [room_id, bob_id, "kick"])
    removed = harness.wait_for(
        "bob's removal message",
        lambda: (
            bob.locator('[data-view="error"]').is_visible()
            and bob.locator("#error-text").text_content()
        ),
    )
    harness.wait_for("bob's tile to go", lambda: harness.remote_video(alice, bob_id).count() == 0)
    # Bob's page must stay away (no reconnect loop).
    time.sleep(2)
    return {
        "muted": muted,
        "kick_status": kick_status,
        "removed_message": removed,
        "bob_in_alice_list_after": _participant(alice, bob_id),
        "bob_peers_after": list(harness.peer_report(bob)),
        "bob_status_after": bob.locator("#connection-status").text_content(),
    }
