"""The owner mutes, then removes, a member from the People list; members see no actions.

An answer for the list's roles asked before the mute and arriving after it does not
undo the mute on the page.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Locator, Page

from tests.web import harness


def _row(page: Page, user_id: str) -> Locator:
    return page.locator(f'[data-testid="participant"][data-user-id="{user_id}"]')


def _actions(page: Page, user_id: str) -> list[str]:
    buttons: list[str] = (
        _row(page, user_id).locator(".participant-actions button").all_text_contents()
    )
    return buttons


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "People room")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for("bob in alice's list", lambda: _row(alice, bob_id).count() == 1)
    harness.wait_for("alice in bob's list", lambda: _row(bob, alice_id).count() == 1)
    owner_sees = harness.wait_for("the actions on bob", lambda: _actions(alice, bob_id))
    member_sees = {"on_alice": _actions(bob, alice_id), "on_self": _actions(bob, bob_id)}
    owner_on_self = _actions(alice, alice_id)

    # Carol comes in: alice's page asks for the roles again (someone unknown), and that
    # answer, from before the mute below, is held until the mute is on the page.
    harness.hold_next_answer(alice, "/members$")
    carol = harness.new_page(browser, server.url, errors)
    carol.goto(f"/chat/rooms/{room_id}")
    carol_id = harness.join_as_guest(carol, "carol")
    harness.wait_for("carol in alice's list", lambda: _row(alice, carol_id).count() == 1)
    harness.wait_for("alice's roles asked for", lambda: harness.answer_held(alice))

    _row(alice, bob_id).get_by_test_id("participant-mute").click()
    notice = harness.wait_for("bob's muted notice", lambda: harness.notice_text(bob, "moderation"))

    def unmute_on_bob() -> bool:
        return _row(alice, bob_id).get_by_test_id("participant-unmute").count() == 1

    harness.wait_for("Unmute on bob's row", unmute_on_bob)
    harness.release_held_answer(alice)  # the older answer: bob not muted
    unmute_shown = unmute_on_bob()
    bob_mic_disabled = bob.get_by_test_id("toggle-mic").is_disabled()

    _row(alice, bob_id).get_by_test_id("participant-kick").click()
    removed = harness.wait_for(
        "bob's removed screen",
        lambda: (
            bob.locator('[data-view="error"]').is_visible()
            and bob.locator("#error-text").text_content()
        ),
    )
    harness.wait_for("bob to leave alice's list", lambda: _row(alice, bob_id).count() == 0)
    return {
        "owner_sees": owner_sees,
        "owner_on_self": owner_on_self,
        "member_sees": member_sees,
        "muted_notice": notice,
        "unmute_shown": unmute_shown,
        "bob_mic_disabled": bob_mic_disabled,
        "removed": removed,
    }
