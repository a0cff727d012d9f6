"""A private room's lobby: bob knocks from the waiting screen, alice admits him from
the list beside her call, and bob's page goes into the room by itself; carol is denied
and told so.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser

from tests.web import harness


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    harness.join_as_guest(alice, "alice")
    alice.locator("#room-private").check()
    # Alice's lobby list, fetched as her room opens (empty), reaches her page only after
    # bob's knock has: the knock must stay listed.
    harness.hold_next_answer(alice, "/lobby$")
    room_id = harness.create_room(alice, "Private room")
    harness.wait_for("alice's room", lambda: alice.locator("#room-private-badge").is_visible())

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for("bob's waiting screen", lambda: bob.get_by_test_id("knock-ask").is_visible())
    before = bob.get_by_test_id("knock-status").text_content()
    bob.get_by_test_id("knock-ask").click()
    waiting = harness.wait_for(
        "bob waiting",
        lambda: (
            "Waiting" in (bob.get_by_test_id("knock-status").text_content() or "")
            and bob.get_by_test_id("knock-status").text_content()
        ),
    )
    person = alice.locator('[data-testid="lobby-person"]')
    harness.wait_for("bob in alice's lobby list", lambda: person.count() == 1)
    harness.release_held_answer(alice)
    listed_after_a_late_answer = person.count()
    listed_name = person.locator(".lobby-name").text_content()
    person.get_by_role("button", name="Admit").click()
    # Admitted: the pre-join screen, then the room.
    harness.wait_for("bob's pre-join screen", lambda: bob.get_by_test_id("prejoin").is_visible())
    harness.join_call(bob)
    harness.wait_for("bob in the room", lambda: bob.locator('[data-view="room"]').is_visible())
    harness.wait_for(
        "bob's socket",
        lambda: (
            bob.locator("#connection-status").text_content() == ""
            and not bob.get_by_test_id("chat-send").is_disabled()
        ),
    )
    harness.send_chat(bob, "hello from the lobby")
    harness.wait_for_chat([alice, bob], "hello from the lobby")
    lobby_hidden_after = alice.locator("#lobby-panel").is_hidden()

    carol = harness.new_page(browser, server.url, errors)
    carol.goto(f"/chat/rooms/{room_id}")
    harness.join_as_guest(carol, "carol")
    harness.wait_for(
        "carol's waiting screen", lambda: carol.get_by_test_id("knock-ask").is_visible()
    )
    carol.get_by_test_id("knock-ask").click()
    harness.wait_for("carol in alice's lobby list", lambda: person.count() == 1)
    person.get_by_role("button", name="Deny").click()
    refused = harness.wait_for(
        "carol's refusal",
        lambda: (
            "did not let you in" in (carol.get_by_test_id("knock-status").text_content() or "")
            and carol.get_by_test_id("knock-status").text_content()
        ),
    )
    return {
        "room_id": room_id,
        "bob_id": bob_id,
        "before": before,
        "waiting": waiting,
        "listed_name": listed_name,
        "listed_after_a_late_answer": listed_after_a_late_answer,
        "lobby_hidden_after": lobby_hidden_after,
        "carol_refused": refused,
        "carol_in_room": carol.locator('[data-view="room"]').is_visible(),
    }
