"""The server restarts under a call: pages reconnect, catch up on chat, and call again.

While the server is down alice cannot send; right after it is back bob sends a
message before alice's socket has returned, which alice must get by the
``?since=`` replay.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser

from tests.web import harness

# This scenario stops and starts its server: it gets one of its own.
OWN_SERVER = True


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Restart room")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for_media(alice, [bob_id])
    harness.wait_for_media(bob, [alice_id])
    harness.send_chat(alice, "before the restart")
    harness.wait_for_chat([alice, bob], "before the restart")

    started = time.monotonic()
    server.stop()
    status_while_down = harness.wait_for(
        "alice to notice",
        lambda: alice.locator("#connection-status").text_content() or None,
        timeout=10,
    )
    server.start()
    restarted = time.monotonic()

    # Bob sends as soon as his socket is back, maybe before alice's is.
    harness.wait_for(
        "bob's socket", lambda: bob.locator("#connection-status").text_content() == "", timeout=20
    )
    harness.send_chat(bob, "after the restart")
    harness.wait_for_chat([alice, bob], "after the restart", timeout=20)
    chat_back = round(time.monotonic() - restarted, 2)

    harness.wait_for_media(alice, [bob_id], timeout=25)
    harness.wait_for_media(bob, [alice_id], timeout=25)
    call_back = round(time.monotonic() - restarted, 2)
    return {
        "status_while_down": status_while_down,
        "down_seconds": round(restarted - started, 2),
        "chat_back_seconds": chat_back,
        "call_back_seconds": call_back,
        "alice_chat": harness.chat_texts(alice),
        "bob_chat": harness.chat_texts(bob),
        "status_after": {
            "alice": alice.locator("#connection-status").text_content(),
            "bob": bob.locator("#connection-status").text_content(),
        },
        "peers_after": {"alice": harness.peer_report(alice), "bob": harness.peer_report(bob)},
        "picture_after": harness.picture_check(alice, bob_id),
    }
