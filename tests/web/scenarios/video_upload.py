"""Upload a short clip from the room's Videos panel; it gets ready by itself and plays.

The clip is a real 2 s H.264/AAC MP4 made with PyAV; the page picks it with the file
input, watches the progress bar, follows the ``video_status`` frames to ``ready``
(no reload) and plays the HLS rendition in a ``<video>`` element.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.media.samples import write_video
from tests.web import harness

TITLE = "Holiday <b>clip</b>"


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    page = harness.new_page(browser, server.url, errors)
    page.goto("/chat")
    harness.join_as_guest(page, "vera")
    harness.create_room(page, "Video room")
    page.get_by_test_id("tab-videos").click()  # the library is the room's second view
    panel = page.get_by_test_id("videos-panel")
    panel.wait_for(state="visible")

    with tempfile.TemporaryDirectory(prefix="videochat-clip-") as tmp:
        clip = write_video(Path(tmp) / "clip.mp4", width=320, height=240, seconds=2.0)
        page.get_by_test_id("video-title").fill(TITLE)
        page.get_by_test_id("video-file").set_input_files(str(clip))
        started = time.monotonic()
        page.get_by_test_id("video-upload").click()
        item = page.get_by_test_id("video-item").first
        item.wait_for(state="attached")
        progress = page.get_by_test_id("video-progress")
        harness.wait_for("the upload to complete", lambda: progress.get_attribute("value") == "100")

    statuses: list[str] = []

    def ready() -> bool:
        status = item.get_attribute("data-status") or ""
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status == "failed":
            raise AssertionError(f"the video failed: {item.text_content()}")
        return status == "ready"

    harness.wait_for("the video to be ready", ready, timeout=30.0)
    ready_seconds = round(time.monotonic() - started, 2)
    video_id = item.get_attribute("data-video-id")

    item.get_by_test_id("video-play").click()
    player = page.get_by_test_id("video-player")
    player.wait_for(state="visible")
    played = harness.wait_for(
        "the video to play",
        lambda: (t := player.evaluate("(video) => video.currentTime")) > 0.5 and t,
        timeout=15.0,
    )
    attributes = player.evaluate(
        """(video) => ({controls: video.controls, src: video.src, poster: video.poster,
                       video_id: video.dataset.videoId})"""
    )
    return {
        "video_id": video_id,
        "item_title": item.locator(".video-item-title").text_content(),
        "progress_label": progress.get_attribute("aria-labelledby"),
        "statuses": statuses,
        "ready_seconds": ready_seconds,
        "current_time": played,
        "player": attributes,
        "bold_in_panel": panel.locator("b").count(),
    }
