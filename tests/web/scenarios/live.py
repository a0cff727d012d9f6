"""Go live from the room UI in Chromium; another page watches the live HLS; stop it.

The publisher is Chromium's fake camera and microphone (a moving picture and a beep),
sent over WHIP by the web client's Go live button to the server's aiortc, which writes
live HLS with PyAV. The scenario checks the playlist and decodes its segments (video
and audio frames), lets a second person in another page watch it in a ``<video>``
element (its ``currentTime`` must advance), then ends the stream from the UI: the
playlist gets ``#EXT-X-ENDLIST`` and the broadcast shows up ready in the Videos panel.
Screenshots go to ``test-artifacts/web/`` (or ``$VIDEOCHAT_TEST_ARTIFACTS/web``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from playwright.sync_api import Browser, Page

from tests.web import harness

ROOT = Path(__file__).resolve().parents[3]
LOOPBACK_ICE = ROOT / "tests" / "live" / "loopback_ice"
# aioice offers 127.0.0.1 inside the namespace (test-only start-up hook).
SETTINGS = {"PYTHONPATH": str(LOOPBACK_ICE)}
ARTIFACTS = harness.ARTIFACTS

STREAM_JS = """
async (streamId) => {
  const session = JSON.parse(localStorage.getItem('videochat.session.v1'));
  const response = await fetch(`/live-streams/${streamId}`, {
    headers: { Authorization: `Bearer ${session.access_token}` },
  });
  return response.json();
}
"""

PLAYER_JS = """
(video) => ({
  currentTime: video.currentTime,
  readyState: video.readyState,
  paused: video.paused,
  videoWidth: video.videoWidth,
  videoHeight: video.videoHeight,
  error: video.error ? video.error.code : null,
  message: video.error ? video.error.message : null,
  src: video.currentSrc,
  retries: Number(video.dataset.retries ?? 0),
})
"""


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def _uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _screenshot(page: Page, name: str, shots: list[str]) -> None:
    shots.append(harness.save_screenshot(page, f"live-{name}"))


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    # Imported here: the module patches aioice (loopback ICE), harmless in this process.
    from tests.live.scenarios.publish import _decode

    result: dict[str, Any] = {}
    shots: list[str] = []
    lena = harness.new_page(browser, server.url, errors, width=1280, height=900)
    lena.goto("/chat")
    harness.join_as_guest(lena, "lena")
    room_id = harness.create_room(lena, "Live room")

    lena.get_by_test_id("go-live").click()
    lena.get_by_test_id("live-title").fill("Lena's show")
    clicked = time.monotonic()
    lena.get_by_test_id("live-start").click()
    item = lena.get_by_test_id("live-stream").first
    item.wait_for(state="attached", timeout=20_000)
    stream_id = item.get_attribute("data-stream-id")
    stream: dict[str, Any] = lena.evaluate(STREAM_JS, stream_id)
    result["stream_while_live"] = {key: stream.get(key) for key in ("status", "title")}
    result["stop_button_shown"] = lena.get_by_test_id("live-stop").is_visible()
    result["preview_shown"] = lena.get_by_test_id("live-preview").is_visible()

    pull = urljoin(server.url, stream["pull_url"])

    def playlist() -> str | None:
        status, body = _get(pull)
        text = body.decode()
        return text if status == 200 and _uris(text) else None

    live_text = harness.wait_for("the live playlist", playlist, timeout=30.0, interval=0.2)
    result["click_to_first_segment"] = round(time.monotonic() - clicked, 2)

    # A second person opens the room, sees the badge and watches.
    vic = harness.new_page(browser, server.url, errors, width=1000, height=800)
    vic.goto(f"/chat/rooms/{room_id}")
    harness.join_as_guest(vic, "vic")
    badge = vic.get_by_test_id("live-badge").first
    badge.wait_for(state="visible", timeout=20_000)
    result["viewer_badge"] = badge.text_content()
    # Watching asks for the room's streams again: that answer (the stream live) is held
    # until the stream has ended and the viewer's list has dropped it, then let through,
    # as a slow answer overtaken by the end's would arrive.
    harness.hold_next_answer(vic, "/live-streams$")
    vic.get_by_test_id("watch-live").first.click()
    player = vic.get_by_test_id("live-video")
    player.wait_for(state="attached", timeout=25_000)
    result["native_hls"] = vic.evaluate(
        "document.createElement('video').canPlayType('application/vnd.apple.mpegurl')"
    )

    player_errors: list[dict[str, Any]] = []

    def playing() -> dict[str, Any] | None:
        state: dict[str, Any] = player.evaluate(PLAYER_JS)
        if state["error"] is not None and not player_errors:
            # The client reloads after an error; keep what the player choked on.
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            text = playlist() or ""
            player_errors.append({**state, "playlist": text})
            base = pull.rsplit("/", 1)[0]
            for uri in _uris(text):
                (ARTIFACTS / f"live-failed-{uri}").write_bytes(_get(f"{base}/{uri}")[1])
        return state if state["currentTime"] > 0 else None

    first = harness.wait_for("the live video to start", playing, timeout=30.0, interval=0.2)

    def advanced() -> dict[str, Any] | None:
        state: dict[str, Any] = player.evaluate(PLAYER_JS)
        return state if state["currentTime"] >= first["currentTime"] + 2.0 else None

    later = harness.wait_for("the live video to advance", advanced, timeout=30.0, interval=0.2)
    result["player"] = {"first": first, "later": later, "errors": player_errors}
    result["viewer_frame_variance"] = round(float(player.evaluate(harness.VIDEO_VARIANCE_JS)), 1)
    _screenshot(vic, "viewer-playing", shots)
    _screenshot(lena, "publisher-live", shots)

    # Decode the newest segments: frames with audio, from the fake devices.
    live_text = playlist() or live_text
    result["live_playlist"] = live_text
    base = pull.rsplit("/", 1)[0]
    decoded = []
    for uri in _uris(live_text)[-2:]:
        status, data = _get(f"{base}/{uri}")
        decoded.append({"uri": uri, "status": status, **_decode(data)})
    result["segments"] = decoded

    # End it from the UI.
    lena.get_by_test_id("live-stop").click()
    stopped = time.monotonic()

    def ended() -> dict[str, Any] | None:
        state: dict[str, Any] = lena.evaluate(STREAM_JS, stream_id)
        return state if state["status"] == "ended" and state.get("video_id") else None

    result["stream_after_stop"] = harness.wait_for("the stream to end", ended, timeout=30.0)
    status, body = _get(pull)
    result["final_playlist"] = {"status": status, "text": body.decode()}
    result["go_live_shown_again"] = lena.get_by_test_id("go-live").is_visible()

    # The viewer's player gives way to a clear "Stream ended", with the recording.
    ended = vic.get_by_test_id("live-ended")
    ended.wait_for(state="visible", timeout=15_000)
    result["viewer_ended"] = {
        "text": ended.text_content(),
        "players_left": vic.get_by_test_id("live-video").count(),
        "recording_link": vic.get_by_test_id("live-recording").get_attribute("href"),
    }
    _screenshot(vic, "viewer-ended", shots)

    lena.get_by_test_id("tab-videos").click()
    video_item = lena.locator(f'[data-testid="video-item"][data-video-id="{stream_id}"]')
    harness.wait_for(
        "the broadcast in the library",
        lambda: video_item.count() and video_item.get_attribute("data-status") == "ready",
        timeout=30.0,
    )
    result["library_seconds_after_stop"] = round(time.monotonic() - stopped, 2)
    result["library_title"] = video_item.locator(".video-item-title").text_content()
    video_item.get_by_test_id("video-play").click()
    archive = lena.get_by_test_id("video-player")
    archive.wait_for(state="visible")
    result["archive_played"] = harness.wait_for(
        "the archive to play",
        lambda: (t := archive.evaluate("(video) => video.currentTime")) > 0.5 and t,
        timeout=20.0,
    )
    _screenshot(lena, "publisher-after-stop", shots)
    result["viewer_live_items_after_stop"] = harness.wait_for(
        "the viewer's list to drop the stream",
        lambda: vic.get_by_test_id("live-stream").count() == 0 and "empty",
        timeout=15.0,
    )
    # The held, older answer arrives now: the list must not bring the stream back.
    harness.release_held_answer(vic)
    result["viewer_live_items_after_a_late_answer"] = vic.get_by_test_id("live-stream").count()
    result["screenshots"] = shots
    result["ids"] = {"room": room_id, "stream": stream_id}
    json.dumps(result)  # fail here, not in the runner, on anything unserialisable
    return result
