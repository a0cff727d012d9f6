"""Camera and microphone off show as off to the other page; leaving removes the tile."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness


def _seen(page: Page, other: str) -> dict[str, Any]:
    """How ``page`` shows ``other``: participant entry and video tile state."""
    state: dict[str, Any] = page.evaluate(
        """(other) => {
          const person = document.querySelector(
            `[data-testid="participant"][data-user-id="${other}"]`);
          const tile = document.querySelector(`.tile[data-user-id="${other}"]`);
          const avatar = tile?.querySelector('.avatar');
          return {
            participant: person ? { ...person.dataset } : null,
            tile: tile ? { ...tile.dataset } : null,
            avatar_shown: avatar ? getComputedStyle(avatar).display !== 'none' : null,
          };
        }""",
        other,
    )
    return state


def _video_size(page: Page, other: str) -> list[int] | None:
    """The decoded size of the remote video of ``other``, once there is a picture."""
    size: list[int] | None = harness.remote_video(page, other).evaluate(
        "(video) => (video.videoWidth ? [video.videoWidth, video.videoHeight] : null)"
    )
    return size


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Camera room")

    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob")
    harness.wait_for_media(alice, [bob_id])
    harness.wait_for_media(bob, [alice_id])
    harness.wait_for(
        "bob's camera shown as on",
        lambda: _seen(alice, bob_id)["participant"]["video"] == "true",
        timeout=5,
    )
    initially = _seen(alice, bob_id)

    bob.get_by_test_id("toggle-camera").click()
    harness.wait_for(
        "bob's camera shown as off",
        lambda: _seen(alice, bob_id)["tile"]["video"] == "off",
        timeout=5,
    )
    camera_off = _seen(alice, bob_id)
    camera_button_off = bob.get_by_test_id("toggle-camera").get_attribute("aria-pressed")

    bob.get_by_test_id("toggle-mic").click()
    harness.wait_for(
        "bob's microphone shown as off",
        lambda: _seen(alice, bob_id)["participant"]["audio"] == "false",
        timeout=5,
    )
    mic_off = _seen(alice, bob_id)
    mic_button_off = bob.get_by_test_id("toggle-mic").get_attribute("aria-pressed")

    # Camera back on: the picture comes back (frames keep being decoded).
    bob.get_by_test_id("toggle-camera").click()
    harness.wait_for(
        "bob's camera shown as on again",
        lambda: _seen(alice, bob_id)["tile"]["video"] == "on",
        timeout=5,
    )
    frames_before = harness.peer_report(alice)[bob_id]["framesDecoded"]
    frames_after = harness.wait_for(
        "new frames from bob's camera",
        lambda: (
            (n := harness.peer_report(alice)[bob_id]["framesDecoded"]) > frames_before + 5 and n
        ),
        timeout=10,
    )
    camera_on_again = _seen(alice, bob_id)

    # Screen sharing replaces the camera picture for the others, and back again.
    bob.get_by_test_id("share-screen").click()
    harness.wait_for(
        "bob's screen shown as shared",
        lambda: _seen(alice, bob_id)["participant"]["screen"] == "true",
        timeout=5,
    )
    screen_size = harness.wait_for(
        "the screen's picture (not 4:3 like the camera)",
        lambda: (
            (size := _video_size(alice, bob_id)) and abs(size[0] / size[1] - 4 / 3) > 0.05 and size
        ),
        timeout=10,
    )
    sharing = {
        "seen": _seen(alice, bob_id),
        "button": bob.get_by_test_id("share-screen").get_attribute("aria-pressed"),
        "size": screen_size,
    }
    bob.get_by_test_id("share-screen").click()
    camera_size = harness.wait_for(
        "the camera's picture again",
        lambda: (
            (size := _video_size(alice, bob_id)) and abs(size[0] / size[1] - 4 / 3) < 0.05 and size
        ),
        timeout=10,
    )
    stopped_sharing = {"seen": _seen(alice, bob_id), "size": camera_size}

    bob.get_by_test_id("leave-call").click()
    bob.wait_for_url("**/chat")
    harness.wait_for(
        "bob's tile to go",
        lambda: harness.remote_video(alice, bob_id).count() == 0,
        timeout=10,
    )
    harness.wait_for(
        "bob to leave the participant list",
        lambda: _seen(alice, bob_id)["participant"] is None,
        timeout=10,
    )
    return {
        "initially": initially,
        "camera_off": camera_off,
        "camera_button_off": camera_button_off,
        "mic_off": mic_off,
        "mic_button_off": mic_button_off,
        "camera_on_again": camera_on_again,
        "frames_after_camera_on": [frames_before, frames_after],
        "sharing": sharing,
        "stopped_sharing": stopped_sharing,
        "after_leave": _seen(alice, bob_id),
        "alice_peers_after_leave": list(harness.peer_report(alice)),
        "bob_url_after_leave": bob.url,
        "bob_peers_after_leave": list(harness.peer_report(bob)),
    }
