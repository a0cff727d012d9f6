"""Relay-only calls through a TURN server that is not there: the pages say so.

Nothing listens on the TURN address, so no candidate is ever gathered and the
connection stays "new"; after 15 s each page must show a clear message.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser

from tests.web import harness

# The discard port: nothing answers there inside the namespace.
DEAD_TURN = "turn:127.0.0.1:9?transport=udp"
# Relay only, through that TURN server.
SETTINGS = {
    "VIDEOCHAT_CALLS__ICE_TRANSPORT_POLICY": "relay",
    "VIDEOCHAT_TURN__URLS": f'["{DEAD_TURN}"]',
    "VIDEOCHAT_TURN__SECRET": "a-secret-for-the-test",
}


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Blocked call")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")

    notices = {
        "alice": harness.wait_for(
            "alice's message", lambda: harness.notice_text(alice, f"peer:{bob_id}"), timeout=25
        ),
        "bob": harness.wait_for(
            "bob's message", lambda: harness.notice_text(bob, f"peer:{alice_id}"), timeout=5
        ),
    }
    state: dict[str, Any] = alice.evaluate(
        """(bob) => {
          const pc = window.videochat.peers.get(bob);
          const tile = document.querySelector(`.tile[data-user-id="${bob}"]`);
          return {
            connection_state: pc?.connectionState ?? null,
            policy: pc?.getConfiguration().iceTransportPolicy ?? null,
            ice_servers: pc?.getConfiguration().iceServers.map((server) => server.urls) ?? null,
            tile_connection: tile?.dataset.connection ?? null,
          };
        }""",
        bob_id,
    )
    return {"notices": notices, "alice_view_of_bob": state}
