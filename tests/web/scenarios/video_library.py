"""The video library as a view of its own: grid, thumbnails, large player, rename, delete.

Alice (the room's owner, 1366x800) and Bob (a member, who opens the library by its
address) share a room. Alice uploads a text file (refused: no entry is left behind, also
where Bob's listing, answered before the deletion, reaches him after it), a
real clip (Bob's grid follows it to ``ready`` with a thumbnail, and Bob plays it large
at its own address, also after a reload) and an audio-only file (it fails in
processing: shown failed with its reason, removable by Alice only). Alice renames the
clip (Bob sees the new title) and deletes it (Bob's player says so). Screenshots of the
library on a desktop and a 390x844 phone go among the artifacts.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page

from tests.media.samples import write_audio_only, write_text, write_video
from tests.web import harness

DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}

THUMBNAIL_JS = "(img) => ({complete: img.complete, width: img.naturalWidth})"


def _item(page: Page, video_id: str) -> Locator:
    return page.locator(f'[data-testid="video-item"][data-video-id="{video_id}"]')


def _items(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="video-item"]')].map((item) => ({
            id: item.dataset.videoId,
            status: item.dataset.status,
            title: item.querySelector('.video-item-title')?.textContent ?? null,
            actions: [...item.querySelectorAll('.video-card-actions [data-testid]')]
              .map((node) => node.dataset.testid),
        }))"""
    )
    return found


def _upload(page: Page, path: Path, title: str) -> None:
    page.get_by_test_id("video-title").fill(title)
    page.get_by_test_id("video-file").set_input_files(str(path))
    page.get_by_test_id("video-upload").click()


def _newest_id(page: Page, title: str) -> str:
    def found() -> str | None:
        for item in _items(page):
            if item["title"] == title:
                return str(item["id"])
        return None

    result: str = harness.wait_for(f"“{title}” in the grid", found, timeout=20.0)
    return result


def _status(page: Page, video_id: str, wanted: str, *, timeout: float = 30.0) -> list[str]:
    seen: list[str] = []

    def reached() -> bool:
        item = _item(page, video_id)
        status = item.get_attribute("data-status") if item.count() else "absent"
        if not seen or seen[-1] != status:
            seen.append(status or "")
        return status == wanted

    harness.wait_for(f"{video_id} to be {wanted}", reached, timeout=timeout)
    return seen


# Bob's page: a listing that holds the refused slot is kept from the page until
# released, and a ``video_deleted`` frame is noted when the client parses it.
HOLD_LISTINGS_JS = """() => {
  const stale = { listed: 0, deletionSeen: false };
  const held = new Promise((resolve) => { stale.release = resolve; });
  const parse = JSON.parse;
  JSON.parse = (text, ...rest) => {
    if (typeof text === 'string' && text.includes('"video_deleted"')) stale.deletionSeen = true;
    return parse(text, ...rest);
  };
  const fetch = window.fetch;
  window.fetch = async (...args) => {
    const response = await fetch(...args);
    if (String(args[0]).includes('/videos?limit=') && (await response.clone().json()).length) {
      stale.listed += 1;
      await held;
    }
    return response;
  };
  window.staleListing = stale;
}"""
# Alice's page: her DELETE of the refused slot waits until released.
HOLD_DELETES_JS = """() => {
  const held = new Promise((resolve) => { window.releaseDeletes = resolve; });
  const fetch = window.fetch;
  window.fetch = async (path, init) => {
    if (init?.method === 'DELETE' && String(path).startsWith('/videos/')) await held;
    return fetch(path, init);
  };
}"""


def _refuse_with_a_stale_listing(alice: Page, bob: Page, path: Path) -> None:
    """Upload a file that is refused, while Bob's listing (answered with the slot still
    there) reaches his page only after the slot's ``video_deleted`` frame: the order
    a loaded machine produces now and then."""
    bob.evaluate(HOLD_LISTINGS_JS)
    alice.evaluate(HOLD_DELETES_JS)
    _upload(alice, path, "My notes")
    # Bob hears of the pending slot and asks for the listing, which names it.
    harness.wait_for("Bob's listing with the slot", lambda: bob.evaluate("staleListing.listed"))
    alice.evaluate("releaseDeletes()")
    harness.wait_for(
        "the deletion frame on Bob's page", lambda: bob.evaluate("staleListing.deletionSeen")
    )
    bob.evaluate("staleListing.release()")


def scenario(browser: Browser, server: harness.ServerProcess, errors: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    alice = harness.new_page(browser, server.url, errors, **DESKTOP)
    alice.goto("/chat")
    harness.join_as_guest(alice, "alice")
    room_id = harness.create_room(alice, "Library room")
    alice.get_by_test_id("tab-videos").click()
    alice.wait_for_url(f"**/chat/rooms/{room_id}/videos")
    alice.get_by_test_id("videos-panel").wait_for(state="visible")
    result["call_hidden_in_library"] = not alice.locator("#video-grid").is_visible()
    result["tab_current"] = alice.get_by_test_id("tab-videos").get_attribute("aria-current")

    # Bob opens the library by its address (signs in first).
    bob = harness.new_page(browser, server.url, errors)
    bob.goto(f"/chat/rooms/{room_id}/videos")
    # His library's first listing is in before anything is uploaded: the slot below is
    # news to his page (a frame, then a listing of its own).
    with bob.expect_response(lambda response: "/videos?limit=" in response.url):
        harness.join_as_guest(bob, "bob")
    bob.get_by_test_id("videos-panel").wait_for(state="visible")
    result["bob_url"] = bob.url

    with tempfile.TemporaryDirectory(prefix="videochat-library-") as tmp:
        folder = Path(tmp)
        # 1. Not a video: refused at once, and no "uploading" ghost is left behind, even
        # where a listing answered before the slot's deletion arrives after it.
        _refuse_with_a_stale_listing(alice, bob, write_text(folder / "notes.txt"))
        label = alice.get_by_test_id("video-progress-label")
        result["refused_label"] = harness.wait_for(
            "the refusal", lambda: "failed" in (label.text_content() or "") and label.text_content()
        )

        def no_ghost() -> bool:
            return not _items(alice) and not _items(bob)

        harness.wait_for("no entry for the refused upload", no_ghost, timeout=10.0)
        api_list = alice.evaluate(
            """async (roomId) => {
              const session = JSON.parse(localStorage.getItem('videochat.session.v1'));
              const response = await fetch(`/rooms/${roomId}/videos`, {
                headers: { Authorization: `Bearer ${session.access_token}` } });
              return (await response.json()).length;
            }""",
            room_id,
        )
        result["server_entries_after_refusal"] = api_list

        # 2. A real clip: Bob's grid follows it to ready, with a thumbnail.
        clip = write_video(folder / "clip.mp4", width=640, height=360, seconds=2.0)
        started = time.monotonic()
        _upload(alice, clip, "Team demo")
        video_id = _newest_id(alice, "Team demo")
        _newest_id(bob, "Team demo")
        result["bob_statuses"] = _status(bob, video_id, "ready")
        result["ready_seconds"] = round(time.monotonic() - started, 2)
        thumb = _item(bob, video_id).locator("img")
        result["thumbnail"] = harness.wait_for(
            "the thumbnail", lambda: (s := thumb.evaluate(THUMBNAIL_JS))["width"] > 0 and s
        )
        result["bob_actions_on_alices"] = next(
            i["actions"] for i in _items(bob) if i["id"] == video_id
        )
        result["alice_actions_on_hers"] = next(
            i["actions"] for i in _items(alice) if i["id"] == video_id
        )

        # 3. An audio file: it fails in processing, shown with its reason.
        _upload(alice, write_audio_only(folder / "podcast.m4a"), "Podcast")
        failed_id = _newest_id(alice, "Podcast")
        _status(alice, failed_id, "failed")
        _status(bob, failed_id, "failed")
        reason = _item(alice, failed_id).get_by_test_id("video-error")
        result["failed_reason"] = reason.text_content()
        result["bob_actions_on_failed"] = next(
            i["actions"] for i in _items(bob) if i["id"] == failed_id
        )

    # Screenshots: a ready video and a failed one, desktop and phone.
    _item(alice, video_id).locator("img").wait_for(state="visible")
    shots = [harness.save_screenshot(alice, "library-desktop")]
    phone = harness.new_page(browser, server.url, errors, **PHONE)
    phone.goto(f"/chat/rooms/{room_id}/videos/{video_id}")
    harness.join_as_guest(phone, "carol")
    phone.get_by_test_id("video-player").wait_for(state="visible")
    harness.wait_for(
        "the phone's thumbnails",
        lambda: phone.locator('[data-testid="video-item"] img').count() == 1,
    )
    shots.append(harness.save_screenshot(phone, "library-phone"))
    result["phone_player_width"] = phone.get_by_test_id("video-player").bounding_box()["width"]
    phone.close()

    # Alice removes the failed one: gone for both.
    _item(alice, failed_id).get_by_test_id("video-delete").click()
    harness.wait_for(
        "the failed video gone",
        lambda: _item(alice, failed_id).count() == 0 and _item(bob, failed_id).count() == 0,
    )

    # 4. Bob plays the clip large, at its own address.
    _item(bob, video_id).get_by_test_id("video-play").click()
    bob.wait_for_url(f"**/chat/rooms/{room_id}/videos/{video_id}")
    player = bob.get_by_test_id("video-player")
    player.wait_for(state="visible")
    result["player_width"] = player.bounding_box()["width"]
    result["played"] = harness.wait_for(
        "the clip to play",
        lambda: (t := player.evaluate("(video) => video.currentTime")) > 0.5 and t,
        timeout=15.0,
    )
    shots.append(harness.save_screenshot(bob, "library-playing"))
    # The address alone opens it again.
    bob.reload()
    player = bob.get_by_test_id("video-player")
    player.wait_for(state="visible")
    result["played_after_reload"] = harness.wait_for(
        "the clip to play after a reload",
        lambda: (t := player.evaluate("(video) => video.currentTime")) > 0.5 and t,
        timeout=15.0,
    )

    # 5. Alice renames it: Bob's card and player follow.
    _item(alice, video_id).get_by_test_id("video-rename").click()
    field = alice.get_by_test_id("video-rename-input")
    field.fill("")
    alice.get_by_test_id("video-rename-save").click()
    error = alice.get_by_test_id("video-rename-error")
    error.wait_for(state="visible")
    result["empty_title_error"] = error.text_content()
    field.fill("Team demo, final cut")
    field.press("Enter")
    harness.wait_for(
        "the new title at Bob's",
        lambda: (
            _item(bob, video_id).locator(".video-item-title").text_content()
            == "Team demo, final cut"
            and bob.locator(".video-player-title").text_content() == "Team demo, final cut"
        ),
    )

    # 6. Alice deletes it (asked first): gone for both, Bob's player says so.
    _item(alice, video_id).get_by_test_id("video-delete").click()
    alice.get_by_test_id("video-delete-confirm").click()
    harness.wait_for(
        "the clip gone",
        lambda: _item(alice, video_id).count() == 0 and _item(bob, video_id).count() == 0,
    )
    gone = bob.get_by_test_id("video-gone")
    gone.wait_for(state="visible")
    result["bob_player_after_delete"] = gone.text_content()
    result["bob_video_elements_after_delete"] = bob.locator("[data-testid=video-player]").count()

    # 7. Back to the call: the tiles come back, the library hides.
    alice.get_by_test_id("tab-call").click()
    alice.wait_for_url(f"**/chat/rooms/{room_id}")
    result["call_back"] = (
        alice.locator("#video-grid").is_visible()
        and not alice.get_by_test_id("videos-panel").is_visible()
    )
    result["screenshots"] = shots
    return result
