"""A call capped at two: the third person is told so, and gets in when someone leaves."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

MAX_CALL_SIZE = 2
SETTINGS = {"VIDEOCHAT_CALLS__MAX_CALL_SIZE": str(MAX_CALL_SIZE)}


def _in_call(page: Page, other: str) -> str | None:
    value: str | None = page.evaluate(
        """(other) => document.querySelector(
             `[data-testid="participant"][data-user-id="${other}"]`)?.dataset.inCall ?? null""",
        other,
    )
    return value


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Small call")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for_media(alice, [bob_id])
    harness.wait_for_media(bob, [alice_id])

    carol = harness.new_page(browser, server.url, errors)
    carol.goto(f"/chat/rooms/{room_id}")
    carol_id = harness.join_as_guest(carol, "carol")
    full_notice = harness.wait_for(
        "the call-full notice", lambda: harness.notice_text(carol, "full")
    )
    harness.wait_for("carol shown as waiting", lambda: _in_call(alice, carol_id) == "false")
    while_full = {
        "carol_peers": list(harness.peer_report(carol)),
        "carol_remote_tiles": carol.get_by_test_id("remote-video").count(),
        "alice_peers": list(harness.peer_report(alice)),
        "alice_remote_tiles": alice.get_by_test_id("remote-video").count(),
        "carol_in_call_for_alice": _in_call(alice, carol_id),
        "carol_chat_works": False,
    }
    harness.send_chat(carol, "can you hear me?")
    harness.wait_for_chat([alice, bob], "can you hear me?")
    while_full["carol_chat_works"] = True

    # Bob leaves: a place frees up and carol joins the call by herself.
    bob.get_by_test_id("leave-call").click()
    harness.wait_for_media(carol, [alice_id], timeout=25)
    harness.wait_for_media(alice, [carol_id], timeout=25)
    return {
        "ids": {"alice": alice_id, "bob": bob_id, "carol": carol_id},
        "full_notice": full_notice,
        "while_full": while_full,
        "after_bob_left": {
            "carol_peers": list(harness.peer_report(carol)),
            "alice_peers": list(harness.peer_report(alice)),
            "carol_notice": harness.notice_text(carol, "full"),
            "carol_in_call_for_alice": _in_call(alice, carol_id),
        },
    }
