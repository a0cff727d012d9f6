"""The person speaking gets a highlighted tile.

Chromium's fake microphone beeps. Alice joins with hers on, Bob with his off (on the
pre-join screen): on Bob's page Alice's tile is the speaking one, on Alice's page
her own; Bob's tile is never highlighted. When Alice turns her microphone off the
highlight goes.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

SPEAKING_JS = """
() => Object.fromEntries([...document.querySelectorAll('#video-grid .tile')].map(
  (tile) => [tile.dataset.userId, {
    speaking: tile.dataset.speaking ?? null,
    highlighted: tile.classList.contains('speaking'),
    ring: getComputedStyle(tile).boxShadow !== 'none',
  }]))
"""


def _speaking(page: Page) -> dict[str, dict[str, Any]]:
    tiles: dict[str, dict[str, Any]] = page.evaluate(SPEAKING_JS)
    return tiles


def _speaker(page: Page) -> str | None:
    return next((uid for uid, t in _speaking(page).items() if t["speaking"] == "true"), None)


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Speaker room")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob", join=False)
    bob.get_by_test_id("prejoin-mic").click()  # joins with the microphone off
    harness.join_call(bob)
    harness.wait_for_media(alice, [bob_id])
    harness.wait_for_media(bob, [alice_id])

    started = time.monotonic()
    harness.wait_for("alice's tile speaking on bob's page", lambda: _speaker(bob) == alice_id)
    highlight_seconds = round(time.monotonic() - started, 2)
    on_bob = _speaking(bob)
    harness.wait_for("alice's own tile speaking", lambda: _speaker(alice) == alice_id)
    # Bob is silent: over a few seconds of beeps his tile is never the speaking one.
    samples = []
    for _ in range(10):
        samples.append(_speaking(alice)[bob_id]["speaking"])
        time.sleep(0.3)

    alice.get_by_test_id("toggle-mic").click()
    harness.wait_for("the highlight gone", lambda: _speaker(bob) is None, timeout=10)
    return {
        "alice_id": alice_id,
        "bob_id": bob_id,
        "on_bob": on_bob,
        "highlight_seconds": highlight_seconds,
        "bob_samples_on_alice": samples,
        "after_mute": _speaking(bob),
    }
