"""The owner records a call on the SFU from the browser; everyone sees it is recording.

A real Janus (``janus_media``) with every call on it (``THRESHOLD=0``) and recording on
(Janus writes into a temporary folder that the server reads). Two pages in one call:
the owner presses Record and both pages show the "Recording" sign (the member has no
Record button), and so does a third person who joins meanwhile (from the socket's
``welcome``); the owner presses Stop and the sign goes from every page, a toast points
to the Videos tab, and the room's library gets the recording (processing or ready: the
transcode itself is ``tests/sfu``'s business).
"""

from __future__ import annotations

import tempfile
from typing import Any

from playwright.sync_api import Browser, Page

from tests.sfu import janus_server
from tests.web import harness, janus_media

JANUS = janus_media.janus()
RECORDINGS = tempfile.mkdtemp(prefix="janus-web-recordings-")
SETTINGS = {
    **janus_media.settings(JANUS, threshold=0),
    "VIDEOCHAT_SFU__RECORDING_DIR": RECORDINGS,
    "VIDEOCHAT_SFU__JANUS_RECORDING_DIR": RECORDINGS,
}
# Enough for every publisher's files to hold some media (a few seconds of camera).
RECORD_FRAMES = 60

STATE_JS = """
() => ({
  indicator: !document.getElementById('recording-indicator').hidden,
  indicatorText: document.getElementById('recording-indicator').textContent.trim(),
  indicatorRole: document.getElementById('recording-indicator').getAttribute('role'),
  announced: document.getElementById('recording-announcer').textContent,
  button: !document.getElementById('record-toggle').hidden,
  pressed: document.getElementById('record-toggle').getAttribute('aria-pressed'),
  label: document.getElementById('record-toggle').querySelector('.long').textContent,
  toasts: [...document.querySelectorAll('#toasts .toast')].map((t) => t.textContent),
})
"""


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    if not janus_server.available():
        return {"skipped": "janus is not installed (apt-get install janus)"}
    with janus_media.running(JANUS, browser) as own:
        return _record(own, server, errors)


def _state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(STATE_JS)
    return state


def _encoded(page: Page) -> int:
    frames: int = page.evaluate(janus_media.PAIRS_JS).get("publisher", {}).get("framesEncoded", 0)
    return frames


def _library(page: Page) -> list[dict[str, str]]:
    items: list[dict[str, str]] = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="video-item"]')]
            .map((item) => ({id: item.dataset.videoId, status: item.dataset.status}))"""
    )
    return items


def _on_sfu(page: Page, other: str) -> bool:
    """The page publishes to Janus and plays the other person's video from it."""
    published = page.evaluate("Boolean(window.videochat.sfu?.publisher)")
    return bool(published and janus_media.playing(page, [other]))


def _record(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    ids: dict[str, str] = {}
    alice = harness.new_page(browser, server.url, errors, width=1000, height=700)
    alice.goto("/chat")
    ids["alice"] = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Recorded call")
    bob = harness.new_page(browser, server.url, errors, width=1000, height=700)
    bob.goto(f"/chat/rooms/{room_id}")
    ids["bob"] = harness.join_as_guest(bob, "bob")
    pages: dict[str, Page] = {"alice": alice, "bob": bob}
    for name, other in (("alice", "bob"), ("bob", "alice")):
        harness.wait_for(
            f"{name} on the SFU", lambda p=pages[name], o=ids[other]: _on_sfu(p, o), timeout=60
        )

    toggle = alice.get_by_test_id("record-toggle")
    harness.wait_for("the owner's Record button", toggle.is_visible, timeout=15)
    before = {name: _state(page) for name, page in pages.items()}
    toggle.click()
    recording = {
        name: harness.wait_for(
            f"the recording sign on {name}'s page",
            lambda p=page: (s := _state(p))["indicator"] and s,
            timeout=20,
        )
        for name, page in pages.items()
    }
    harness.wait_for(
        "alice's button to say Stop recording",
        lambda: _state(alice)["pressed"] == "true",
        timeout=10,
    )
    # Someone who comes in while it records learns it from the socket's welcome.
    carol = harness.new_page(browser, server.url, errors, width=1000, height=700)
    carol.goto(f"/chat/rooms/{room_id}")
    ids["carol"] = harness.join_as_guest(carol, "carol")
    pages["carol"] = carol
    recording["carol"] = harness.wait_for(
        "the recording sign on carol's page",
        lambda: (s := _state(carol))["indicator"] and s,
        timeout=20,
    )
    # Some media into the recording: the owner's camera encodes that many more frames.
    sent = _encoded(alice)
    harness.wait_for("frames into the recording", lambda: _encoded(alice) > sent + RECORD_FRAMES)

    alice.get_by_test_id("record-toggle").click()
    stopped = {
        name: harness.wait_for(
            f"the recording sign to go from {name}'s page",
            lambda p=page: not (s := _state(p))["indicator"] and s,
            timeout=30,
        )
        for name, page in pages.items()
    }
    alice.get_by_test_id("tab-videos").click()
    alice.get_by_test_id("videos-panel").wait_for(state="visible")
    videos = harness.wait_for(
        "the recording in the Videos tab",
        lambda: [v for v in _library(alice) if v["status"] in ("processing", "ready")],
        timeout=30,
    )
    return {
        "ids": ids,
        "before": before,
        "recording": recording,
        "stopped": stopped,
        "videos": videos,
    }
