"""The pre-join screen: nothing asks for the camera or microphone before it shows.

Alice's room opens on the pre-join screen: a preview, the camera and microphone
lists (Chromium's fake devices: three microphones, one camera), her name. She picks
another microphone (remembered: a second tab of hers shows it chosen), joins, and
the tracks of the preview go into the call without asking again. Bob turns both off
on the pre-join screen and joins without any capture at all; Carol's browser refuses
every capture and she joins anyway. In the call, Alice switches microphone and the
connection to Bob sends the new one (replaceTrack).
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page

from tests.web import harness

# Every getUserMedia call, with the view shown when it was made, and every track.
RECORD_MEDIA_JS = """
window.__media = [];
window.__tracks = [];
const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
  const view = document.querySelector('main [data-view]:not([hidden])')?.dataset.view ?? null;
  window.__media.push({
    view,
    audio: Boolean(constraints?.audio),
    video: Boolean(constraints?.video),
    audio_device: constraints?.audio?.deviceId?.exact ?? null,
  });
  const stream = await getUserMedia(constraints);
  window.__tracks.push(...stream.getTracks());
  return stream;
};
"""

# A browser where every capture is refused (as after "Block" on the permission prompt).
DENY_MEDIA_JS = """
navigator.mediaDevices.getUserMedia = async () => {
  throw new DOMException('Permission denied', 'NotAllowedError');
};
"""

STATE_JS = """
() => {
  const view = document.querySelector('main [data-view]:not([hidden])')?.dataset.view ?? null;
  const options = (id) => [...document.getElementById(id).options].map((o) => o.textContent);
  const local = document.querySelector('#video-grid .tile.local');
  return {
    view,
    calls: window.__media ?? [],
    live_tracks: (window.__tracks ?? []).filter((t) => t.readyState === 'live').length,
    preview_width: document.querySelector('[data-testid="prejoin-preview"]').videoWidth,
    preview_video: document.getElementById('prejoin-preview').dataset.video,
    cameras: options('camera-select'),
    microphones: options('mic-select'),
    microphone: document.getElementById('mic-select').value,
    name: document.querySelector('[data-testid="prejoin-name"]').textContent,
    status: document.querySelector('[data-testid="prejoin-status"]').textContent,
    join_enabled: !document.querySelector('[data-testid="prejoin-join"]').disabled,
    local_video: local?.dataset.video ?? null,
    mic_pressed: document.querySelector('[data-testid="toggle-mic"]').getAttribute('aria-pressed'),
    camera_pressed: document.querySelector('[data-testid="toggle-camera"]')
      .getAttribute('aria-pressed'),
  };
}
"""

# The microphone each connection sends (the device id of the audio sender's track).
SENT_MICROPHONE_JS = """
() => [...window.videochat.peers.values()].map(
  (pc) => pc.getSenders().find((s) => s.track?.kind === 'audio')?.track?.getSettings().deviceId
    ?? null)
"""


def _state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(STATE_JS)
    return state


def _prejoin_ready(page: Page) -> dict[str, Any]:
    """The pre-join screen with its Join button on; its state."""
    found: dict[str, Any] = harness.wait_for(
        "the pre-join screen",
        lambda: (state := _state(page))["view"] == "prejoin" and state["join_enabled"] and state,
    )
    return found


def _person(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> Page:
    page = harness.new_page(browser, server.url, errors)
    page.add_init_script(RECORD_MEDIA_JS)
    return page


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    alice = _person(browser, server, errors)
    alice.goto("/chat")
    alice_id = harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Pre-join room", join=False)
    first = _prejoin_ready(alice)
    preview = harness.wait_for(
        "the preview and the device lists",
        lambda: (
            (state := _state(alice))["preview_width"] > 0
            and len(state["microphones"]) >= 2
            and state["cameras"]
            and state
        ),
    )

    # Another microphone: the preview reopens it, and the choice is remembered.
    chosen = alice.evaluate("() => document.getElementById('mic-select').options[1].value")
    alice.get_by_test_id("mic-select").select_option(chosen)
    harness.wait_for(
        "the chosen microphone opened",
        lambda: any(call["audio_device"] == chosen for call in _state(alice)["calls"]),
    )
    stored = alice.evaluate("() => JSON.parse(localStorage.getItem('videochat.devices'))")
    calls_before_join = len(_state(alice)["calls"])
    alice.get_by_test_id("prejoin-join").click()
    harness.wait_for("alice in the room", lambda: _state(alice)["local_video"] == "on")
    alice_in_call = _state(alice)

    # A second tab of Alice's opens on the pre-join screen with her microphone chosen.
    tab = harness.new_tab(alice, errors)
    tab.add_init_script(RECORD_MEDIA_JS)
    tab.goto(f"/chat/rooms/{room_id}")
    _prejoin_ready(tab)
    second_tab = harness.wait_for(
        "the remembered microphone",
        lambda: (state := _state(tab))["microphone"] == chosen and state,
    )
    tab.close()

    # Bob turns camera and microphone off before joining: nothing is captured at all.
    bob = _person(browser, server, errors)
    bob.goto(f"/chat/rooms/{room_id}")
    bob_id = harness.join_as_guest(bob, "bob", join=False)
    _prejoin_ready(bob)
    bob.get_by_test_id("prejoin-camera").click()
    bob.get_by_test_id("prejoin-mic").click()
    bob_off = harness.wait_for(
        "bob's preview off",
        lambda: (
            (state := _state(bob))["live_tracks"] == 0 and state["preview_video"] == "off" and state
        ),
    )
    bob_calls_before = len(bob_off["calls"])
    bob.get_by_test_id("prejoin-join").click()
    harness.wait_for("bob in the room", lambda: _state(bob)["local_video"] == "off")
    harness.wait_for(
        "alice and bob connected",
        lambda: harness.peer_report(alice).get(bob_id, {}).get("connectionState") == "connected",
    )
    bob_in_call = _state(bob)

    # Carol's browser refuses the camera and microphone: she still joins.
    carol = harness.new_page(browser, server.url, errors)
    carol.add_init_script(DENY_MEDIA_JS)
    carol.goto(f"/chat/rooms/{room_id}")
    carol_id = harness.join_as_guest(carol, "carol", join=False)
    _prejoin_ready(carol)
    carol_denied = harness.wait_for(
        "carol's refusal explained", lambda: (state := _state(carol))["status"] and state
    )
    carol.get_by_test_id("prejoin-join").click()
    harness.wait_for(
        "carol connected to alice",
        lambda: harness.peer_report(carol).get(alice_id, {}).get("connectionState") == "connected",
    )
    carol_in_call = {**_state(carol), "notice": harness.notice_text(carol, "media")}

    # During the call: another microphone, sent on the existing connections.
    harness.wait_for(
        "alice connected to bob and carol",
        lambda: len(alice.evaluate(SENT_MICROPHONE_JS)) == 2,
    )
    sent_before = alice.evaluate(SENT_MICROPHONE_JS)
    alice.get_by_test_id("toggle-devices").click()
    alice.get_by_test_id("device-panel").wait_for(state="visible")
    switch_to = alice.evaluate(
        "(current) => [...document.getElementById('call-mic-select').options]"
        ".map((o) => o.value).find((value) => value !== current)",
        chosen,
    )
    alice.get_by_test_id("call-mic-select").select_option(switch_to)
    sent_after = harness.wait_for(
        "the new microphone on every connection",
        lambda: (
            (sent := alice.evaluate(SENT_MICROPHONE_JS))
            and all(d == switch_to for d in sent)
            and sent
        ),
    )
    return {
        "first": first,
        "preview": preview,
        "chosen": chosen,
        "stored": stored,
        "calls_before_join": calls_before_join,
        "alice_in_call": alice_in_call,
        "second_tab": second_tab,
        "bob_calls_before_join": bob_calls_before,
        "bob_in_call": bob_in_call,
        "carol_denied": carol_denied,
        "carol_in_call": carol_in_call,
        "carol_id": carol_id,
        "sent_before": sent_before,
        "switch_to": switch_to,
        "sent_after": sent_after,
        "alice_live_tracks_after_switch": _state(alice)["live_tracks"],
    }
