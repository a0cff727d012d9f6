"""Go live from an encoder (OBS): the live panel's WHIP URL and stream key; "Stream ended".

Lena (1366x800) picks "OBS or another WHIP encoder": the panel shows the absolute WHIP
URL and the stream key (hidden until revealed, both copyable, still there after a
reload) with the OBS hint. A stand-in for OBS, a third page, publishes to that URL with
that key over WHIP, exactly as OBS would (Chromium's fake camera). The panel turns
live, Vic watches, Lena ends the stream from the panel, and Vic's player gives way to
"Stream ended" with a link that plays the recording in the library.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser

from tests.web import harness
from tests.web.scenarios.live import SETTINGS as LIVE_SETTINGS
from tests.web.scenarios.live import STREAM_JS

SETTINGS = LIVE_SETTINGS
DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}

# What OBS does when Start Streaming is pressed (WHIP, RFC 9725), from a blank page.
ENCODER_JS = """
async ({url, key}) => {
  const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') done();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') done();
    });
    setTimeout(done, 3000);
  });
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
    body: pc.localDescription.sdp,
  });
  const answer = await response.text();
  if (response.status !== 201) return { status: response.status, body: answer };
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  window.encoder = pc;
  return { status: response.status, location: response.headers.get('Location') };
}
"""


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    shots: list[str] = []
    lena = harness.new_page(browser, server.url, errors, **DESKTOP)
    lena.context.grant_permissions(["clipboard-read", "clipboard-write"])
    lena.goto("/chat")
    harness.join_as_guest(lena, "lena")
    room_id = harness.create_room(lena, "OBS room")

    lena.get_by_test_id("go-live").click()
    lena.get_by_test_id("live-title").fill("Lena on OBS")
    lena.get_by_test_id("live-source").select_option("encoder")
    lena.get_by_test_id("live-start").click()
    panel = lena.get_by_test_id("live-obs")
    panel.wait_for(state="visible")
    stream_id = panel.get_attribute("data-stream-id")
    stream: dict[str, Any] = lena.evaluate(STREAM_JS, stream_id)
    url_field = lena.get_by_test_id("live-whip-url")
    key_field = lena.get_by_test_id("live-stream-key")
    result["state_before"] = lena.get_by_test_id("live-obs-state").text_content()
    result["whip_url"] = url_field.input_value()
    result["expected_whip_url"] = f"{server.url}/whip/{stream_id}"
    result["key_type_before"] = key_field.get_attribute("type")
    result["key_matches"] = key_field.input_value() == stream["stream_key"]
    result["key_visible_text"] = stream["stream_key"] in (panel.text_content() or "")
    result["hint"] = lena.get_by_test_id("live-obs-hint").text_content()

    lena.get_by_test_id("live-reveal-key").click()
    result["key_type_revealed"] = key_field.get_attribute("type")
    result["reveal_pressed"] = lena.get_by_test_id("live-reveal-key").get_attribute("aria-pressed")
    lena.get_by_test_id("live-copy-key").click()
    copied_key = harness.wait_for(
        "the key on the clipboard",
        lambda: (
            (text := lena.evaluate("navigator.clipboard.readText()")) == stream["stream_key"]
            and text
        ),
    )
    lena.get_by_test_id("live-copy-url").click()
    copied_url = harness.wait_for(
        "the URL on the clipboard",
        lambda: (
            (text := lena.evaluate("navigator.clipboard.readText()")).startswith("http") and text
        ),
    )
    result["copied"] = {"key": copied_key == stream["stream_key"], "url": copied_url}
    lena.get_by_test_id("live-reveal-key").click()  # hidden again for the screenshots
    shots.append(harness.save_screenshot(lena, "live-obs-desktop"))
    lena.set_viewport_size(PHONE)
    # On a phone the sidebar (people, then going live) is the People panel.
    lena.get_by_test_id("show-people").click()
    panel.scroll_into_view_if_needed()
    shots.append(harness.save_screenshot(lena, "live-obs-phone"))
    lena.get_by_test_id("show-people").click()
    lena.set_viewport_size(DESKTOP)

    # A reload keeps the settings (the owner's stream key comes with the list).
    lena.reload()
    panel = lena.get_by_test_id("live-obs")
    panel.wait_for(state="visible")
    result["after_reload"] = {
        "stream_id": panel.get_attribute("data-stream-id") == stream_id,
        "key_type": lena.get_by_test_id("live-stream-key").get_attribute("type"),
        "key_matches": lena.get_by_test_id("live-stream-key").input_value() == stream["stream_key"],
    }

    # The encoder publishes with what the panel handed out.
    encoder = harness.new_page(browser, server.url, errors)
    encoder.goto("/chat")
    published = encoder.evaluate(ENCODER_JS, {"url": copied_url, "key": copied_key})
    result["encoder_answer"] = published["status"]
    state = lena.get_by_test_id("live-obs-state")
    harness.wait_for(
        "the panel to say live",
        lambda: state.get_attribute("data-state") == "live",
        timeout=20.0,
    )
    result["state_live"] = state.text_content()

    vic = harness.new_page(browser, server.url, errors)
    vic.goto(f"/chat/rooms/{room_id}")
    harness.join_as_guest(vic, "vic")
    vic.get_by_test_id("watch-live").first.click()
    player = vic.get_by_test_id("live-video")
    player.wait_for(state="attached", timeout=25_000)
    harness.wait_for(
        "the encoder's stream to play",
        lambda: player.evaluate("(video) => video.currentTime") > 0.5,
        timeout=30.0,
    )

    # Lena ends it from the panel: Vic gets "Stream ended", then the recording.
    lena.get_by_test_id("live-obs-end").click()
    ended = vic.get_by_test_id("live-ended")
    ended.wait_for(state="visible", timeout=20_000)
    result["viewer_ended"] = ended.text_content()
    result["viewer_players_left"] = vic.get_by_test_id("live-video").count()
    shots.append(harness.save_screenshot(vic, "live-ended-viewer"))
    harness.wait_for("the panel gone", lambda: lena.get_by_test_id("live-obs").count() == 0)
    vic.get_by_test_id("live-recording").click()
    vic.wait_for_url(f"**/chat/rooms/{room_id}/videos/{stream_id}")
    archive = vic.get_by_test_id("video-player")
    archive.wait_for(state="visible")
    result["recording_played"] = harness.wait_for(
        "the recording to play",
        lambda: (t := archive.evaluate("(video) => video.currentTime")) > 0.5 and t,
        timeout=20.0,
    )
    encoder.evaluate("window.encoder?.close()")
    result["stream_after"] = {
        key: lena.evaluate(STREAM_JS, stream_id).get(key) for key in ("status", "ended_reason")
    }
    result["screenshots"] = shots
    return result
