"""Two, then three people in one room through the UI: a full mesh with real pictures."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness


def _snapshot(pages: dict[str, Page], ids: dict[str, str]) -> dict[str, Any]:
    """For every page: its peers' stats, pictures and timings."""
    out: dict[str, Any] = {}
    for name, page in pages.items():
        others = [ids[other] for other in pages if other != name]
        report = harness.wait_for_media(page, others)
        out[name] = {"peers": report}
    # Pictures only once every connection is up: screenshots are slow on 2 cores.
    for name, page in pages.items():
        others = [ids[other] for other in pages if other != name]
        out[name]["pictures"] = {other: harness.picture_check(page, other) for other in others}
        out[name]["remote_tiles"] = page.get_by_test_id("remote-video").count()
        out[name]["timings"] = harness.timings(page)
    return out


STRAY_CANDIDATES_JS = """
async () => {
  const { Peer } = await import('/static/js/peer.js');
  const notes = [];
  const peer = new Peer({
    polite: false, config: {}, tracks: [], stream: new MediaStream(),
    send: () => {}, onTrack() {}, onStatus() {}, freshConfig: async () => null,
    trace: (event) => notes.push(event),
  });
  await peer.handle({ session: 'gone', candidates: [{
    candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host',
    sdpMid: '0', sdpMLineIndex: 0,
  }] });
  peer.close();
  return notes;
}
"""


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    pages: dict[str, Page] = {}
    ids: dict[str, str] = {}

    alice = harness.new_page(browser, server.url, errors)
    alice.goto("/chat")
    ids["alice"] = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Mesh room")
    pages["alice"] = alice

    # Bob finds the room in the lobby list and clicks it.
    bob = harness.new_page(browser, server.url, errors)
    bob.goto("/chat")
    ids["bob"] = harness.join_as_guest(bob, "bob")
    bob.locator(f'[data-testid="room-link"][data-room-id="{room_id}"]').click()
    bob.wait_for_url(f"**/chat/rooms/{room_id}")
    harness.join_call(bob)
    pages["bob"] = bob

    started = time.monotonic()
    for name, page in pages.items():
        harness.wait_for_media(page, [ids[other] for other in pages if other != name])
    connected_two = round(time.monotonic() - started, 2)
    two = _snapshot(pages, ids)
    two_seconds = round(time.monotonic() - started, 2)

    # Carol comes in by the room's address.
    carol = harness.new_page(browser, server.url, errors)
    carol.goto(f"/chat/rooms/{room_id}")
    ids["carol"] = harness.join_as_guest(carol, "carol")
    pages["carol"] = carol

    started = time.monotonic()
    for name, page in pages.items():
        harness.wait_for_media(page, [ids[other] for other in pages if other != name])
    connected_three = round(time.monotonic() - started, 2)
    three = _snapshot(pages, ids)
    three_seconds = round(time.monotonic() - started, 2)
    screenshots = [harness.save_screenshot(page, f"mesh-{name}") for name, page in pages.items()]

    # Candidates that reach a connection before any description of the other side's
    # (leftovers of a connection that is gone) are dropped, not a console warning.
    stray = alice.evaluate(STRAY_CANDIDATES_JS)

    return {
        "stray_candidates": stray,
        "ids": ids,
        "two": two,
        "three": three,
        "seconds_until_all_connected": {"two": connected_two, "three": connected_three},
        "screenshots": screenshots,
        "seconds_measuring": {"two": two_seconds, "three": three_seconds},
        "call_traces": {
            name: page.evaluate("window.videochat.trace") for name, page in pages.items()
        },
        "local_tiles": {
            name: page.get_by_test_id("local-video").count() for name, page in pages.items()
        },
    }
