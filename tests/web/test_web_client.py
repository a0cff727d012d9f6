"""The web client's views in real Chromium pages: chat, accounts, moderation, videos, live.

Each test reads the result of one scenario (``tests/web/scenarios/``), run by the
``scenario_results`` fixture (``conftest.py``): in one process inside a loopback-only
network namespace, with the server(s) (SQLite, the in-process broker) and one Chromium.
The calls themselves (mesh, relay, SFU) are ``test_web_calls.py``. Run with ``-s`` to
see the measured times.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.web.results import LOOPBACK, MIN_PICTURE_VARIANCE, result_of, unavailable
from tests.web.scenarios.tus_js_client import CHUNK, TITLE, TUS_JS
from tests.web.views import VIEWS

pytestmark = [pytest.mark.browser, pytest.mark.netns]


# Test → (scenario, time budget in seconds), in the order the scenarios run.
SCENARIOS: dict[str, tuple[str, float]] = {
    "test_chat_arrives_in_order_and_a_reload_rejoins_with_history": ("chat_reload", 90),
    "test_camera_off_shows_as_off_and_leaving_removes_the_tile": ("camera_leave", 90),
    "test_deep_link_opens_the_room_and_chat_markup_stays_text": ("deeplink_xss", 90),
    "test_accounts_register_refresh_and_log_in_again": ("accounts", 90),
    "test_a_moderator_mutes_and_removes_someone": ("moderation", 90),
    "test_a_knock_on_a_private_room_is_admitted_or_denied": ("lobby", 90),
    "test_a_full_call_says_so_and_lets_the_next_person_in_later": ("call_limits", 120),
    "test_relay_only_calls_go_through_coturn_which_checks_credentials": ("turn_relay", 90),
    "test_a_server_restart_is_survived": ("server_restart", 180),
    "test_an_uploaded_video_gets_ready_and_plays": ("video_upload", 60),
    "test_going_live_from_the_ui_is_watched_in_another_page_and_kept": ("live", 120),
    "test_the_chat_pane_edits_scrolls_pages_groups_and_links": ("chat_pane", 90),
    "test_not_found_banned_kicked_and_left_get_clear_screens": ("room_screens", 120),
    "test_the_owner_mutes_and_removes_from_the_people_list": ("moderation_ui", 90),
    "test_the_pre_join_screen_comes_before_any_capture_and_remembers_devices": ("prejoin", 90),
    "test_the_person_speaking_gets_a_highlighted_tile": ("speaker", 90),
    "test_a_shared_screen_is_spotlighted_and_the_button_stops_it": ("spotlight", 90),
    "test_on_a_phone_the_controls_stay_in_reach_and_the_page_is_one_screen": ("phone_layout", 90),
    "test_a_public_room_link_is_copied_and_rejoin_goes_straight_back": ("copy_link", 60),
    "test_the_video_library_is_a_view_with_a_grid_a_player_rename_and_delete": (
        "video_library",
        150,
    ),
    "test_the_live_panel_hands_obs_its_whip_url_and_key_and_viewers_see_the_end": ("live_obs", 120),
    "test_a_muted_members_message_is_refused_by_the_composer_not_lost": ("chat_muted", 60),
    "test_tus_js_client_on_another_origin_resumes_and_finishes_an_upload": ("tus_js_client", 90),
    "test_api_docs_render_offline_from_the_apps_own_files": ("api_docs", 60),
    "test_namesake_guests_are_told_apart_and_a_guest_is_warned_before_signing_out": ("guests", 120),
    "test_every_view_passes_axe_and_every_control_is_reached_by_keyboard": ("accessibility", 180),
}


def test_chat_arrives_in_order_and_a_reload_rejoins_with_history(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "chat_reload")
    sent = result["sent"]
    assert result["before_reload"] == {"alice": sent, "bob": sent}
    edited = [sent[0], "Message deleted", "a third message, edited", sent[3]]
    assert result["after_edits"] == {"alice": edited, "bob": edited}
    assert result["edited_marks"] == {"alice": 1, "bob": 1}
    assert result["typing_indicator"] == "bob is typing…"
    assert result["reactions"] == {
        "alice_pressed_before": "false",
        "alice_after": ["🎉 2", "true"],
        "bob_after": ["🎉 2", "true"],
        "bob_after_reload": "🎉 2",
    }
    assert result["history_after_reload"] == edited
    assert result["after_reload_bob"] == [*edited, "after the reload"]
    assert result["bob_url_after_reload"].endswith(f"/chat/rooms/{result['room_id']}")
    for name, peers in result["peers_after_reload"].items():
        assert len(peers) == 1, name
        (peer,) = peers.values()
        assert peer["connectionState"] == "connected", name
        assert peer["framesDecoded"] > 0, name
    picture = result["pictures_after_reload"]["alice_sees_bob"]
    assert picture["frame_variance"] > MIN_PICTURE_VARIANCE
    print(f"  back in the call {result['rejoin_seconds']}s after the reload")
    print(f"  bob after reload: {result['timings_after_reload']['bob']}")


def test_camera_off_shows_as_off_and_leaving_removes_the_tile(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "camera_leave")
    assert result["initially"]["participant"]["video"] == "true"
    assert result["initially"]["tile"]["video"] == "on"
    assert result["initially"]["avatar_shown"] is False

    off = result["camera_off"]
    assert off["participant"]["video"] == "false"
    assert off["tile"]["video"] == "off"
    assert off["avatar_shown"] is True
    assert result["camera_button_off"] == "false"

    assert result["mic_off"]["participant"]["audio"] == "false"
    assert result["mic_off"]["tile"]["audio"] == "off"
    assert result["mic_button_off"] == "false"

    assert result["camera_on_again"]["tile"]["video"] == "on"
    before, after = result["frames_after_camera_on"]
    assert after > before

    sharing = result["sharing"]
    assert sharing["seen"]["participant"]["screen"] == "true"
    assert sharing["seen"]["tile"]["screen"] == "on"
    assert sharing["button"] == "true"
    stopped = result["stopped_sharing"]
    assert stopped["seen"]["participant"]["screen"] == "false"
    assert sharing["size"] != stopped["size"]

    assert result["after_leave"] == {"participant": None, "tile": None, "avatar_shown": None}
    assert result["alice_peers_after_leave"] == []
    assert result["bob_url_after_leave"].endswith("/chat")
    assert result["bob_peers_after_leave"] == []


def test_deep_link_opens_the_room_and_chat_markup_stays_text(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "deeplink_xss")
    assert result["url_before_name"].endswith(result["path"])
    assert result["url_in_room"].endswith(result["path"])
    assert result["title"] == "Deep link room"
    payload = "<img src=x onerror=alert(1)>"
    for name, rendered in result["rendered"].items():
        assert rendered["text"] == [payload], name
        assert rendered["images"] == 0, name
        assert rendered["in_messages"] == 0, name
    assert result["phone_layout"] == {"overflowing": False, "controls_visible": True}


def test_a_full_call_says_so_and_lets_the_next_person_in_later(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "call_limits")
    ids = result["ids"]
    assert "This call is full" in result["full_notice"]
    assert "at most 2 people" in result["full_notice"]
    assert result["while_full"] == {
        "carol_peers": [],
        "carol_remote_tiles": 0,
        "alice_peers": [ids["bob"]],
        "alice_remote_tiles": 1,
        "carol_in_call_for_alice": "false",
        "carol_chat_works": True,
    }
    assert result["after_bob_left"] == {
        "carol_peers": [ids["alice"]],
        "alice_peers": [ids["carol"]],
        "carol_notice": None,
        "carol_in_call_for_alice": "true",
    }


def test_relay_only_calls_go_through_coturn_which_checks_credentials(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "turn_relay")
    assert result["configuration"]["policy"] == "relay"
    assert result["configuration"]["urls"] == [result["turn_url"]]
    for name, peer in result["peers"].items():
        # Both ends of the nominated pair are coturn's relayed addresses.
        assert peer["connectionState"] == "connected", name
        assert peer["nominated"], name
        assert peer["pairState"] == "succeeded", name
        assert (peer["localType"], peer["remoteType"]) == ("relay", "relay"), name
        assert peer["localAddress"] == LOOPBACK, name
        assert peer["framesDecoded"] > 0, name
    # The credentials /rtc/ice-servers issued: "expiry:user_id", valid for the TTL.
    assert result["username_user"] == result["ids"]["alice"]
    assert 500 < result["username_expiry_in"] <= 600
    allocations = result["allocations"]
    assert allocations["issued"]["allocated"] is True
    assert allocations["issued"]["relayed"][0] == LOOPBACK
    for refused in ("forged_password", "extended_expiry", "other_secret", "expired"):
        assert allocations[refused]["allocated"] is False, refused
        assert allocations[refused]["error_code"] == 401, refused
    print(f"  relayed call connected in {result['connected_seconds']}s: {result['timings']}")


def test_accounts_register_refresh_and_log_in_again(scenario_results: dict[str, Any]) -> None:
    # The refused token and the wrong password are 401s on purpose.
    result = result_of(
        scenario_results, "accounts", expected_console=("status of 401 (Unauthorized)",)
    )
    assert result["registered_user"] == "dana"
    assert result["media_notice"] == (
        "Camera unavailable (none was found): you joined with your microphone only."
    )
    assert result["buttons_without_camera"] == {"toggle-mic": "true", "toggle-camera": "false"}
    assert result["refresh_rotated"] is True
    assert result["access_replaced"] is True
    assert result["signed_out_session"] == {}
    assert result["wrong_password_message"] == "Incorrect username or password"
    assert result["whoami_after_login"] == "dana"
    assert result["url_after_login"].endswith("/chat")


def test_a_moderator_mutes_and_removes_someone(scenario_results: dict[str, Any]) -> None:
    result = result_of(scenario_results, "moderation")
    muted = result["muted"]
    assert muted["status"] == 200
    assert "A moderator muted you" in muted["notice"]
    seen = muted["seen_by_alice"]
    assert (seen["audio"], seen["video"], seen["screen"]) == ("false", "false", "false")
    assert muted["bob_controls_disabled"] == {
        "toggle-mic": True,
        "toggle-camera": True,
        "share-screen": True,
    }
    assert result["kick_status"] == 200
    assert "removed you" in result["removed_message"]
    assert result["bob_in_alice_list_after"] is None
    assert result["bob_peers_after"] == []
    assert result["bob_status_after"] == ""


def test_a_server_restart_is_survived(scenario_results: dict[str, Any]) -> None:
    # While the server is down, reconnect attempts fail loudly in the console.
    result = result_of(
        scenario_results,
        "server_restart",
        expected_console=("ERR_CONNECTION_REFUSED", "WebSocket connection to"),
    )
    assert result["status_while_down"]
    both = ["before the restart", "after the restart"]
    assert result["alice_chat"] == both
    assert result["bob_chat"] == both
    assert result["status_after"] == {"alice": "", "bob": ""}
    for name, peers in result["peers_after"].items():
        (peer,) = peers.values()
        assert peer["connectionState"] == "connected", name
        assert peer["framesDecoded"] > 0, name
    assert result["picture_after"]["frame_variance"] > MIN_PICTURE_VARIANCE
    print(f"  chat back {result['chat_back_seconds']}s, call {result['call_back_seconds']}s")


def test_an_uploaded_video_gets_ready_and_plays(scenario_results: dict[str, Any]) -> None:
    result = result_of(scenario_results, "video_upload")
    assert result["item_title"] == "Holiday <b>clip</b>"
    assert result["bold_in_panel"] == 0
    assert result["progress_label"] == "video-progress-label"
    # Followed through socket frames: the page was never reloaded.
    assert result["statuses"][-1] == "ready"
    assert result["current_time"] > 0.5
    player = result["player"]
    assert player["controls"] is True
    assert player["video_id"] == result["video_id"]
    assert "/master.m3u8" in player["src"]
    assert "/thumbnail.jpg" in player["poster"]
    print(f"  ready after {result['ready_seconds']}s, statuses {result['statuses']}")


def test_tus_js_client_on_another_origin_resumes_and_finishes_an_upload(
    scenario_results: dict[str, Any],
) -> None:
    """tus-js-client (npm) in Chromium: the slot's tus_url as its endpoint, chunks, an abort,
    a resume found by fingerprint; then the deferred-length way with the URL as uploadUrl."""
    if not TUS_JS.exists():
        unavailable(f"{TUS_JS} is missing (scripts/ensure-test-tools.sh installs it with npm)")
    result = result_of(scenario_results, "tus_js_client")
    size, url = result["clip_bytes"], result["slot"]["tus_url"]
    assert result["size"] == size and url.startswith(result["api"] + "/uploads/tus/")
    # The creation POST on the slot answers its own URL; two chunks, then the abort.
    post, *patches = result["firstRun"]
    assert (post["method"], post["status"], result["aborted"]["url"]) == ("POST", 201, url)
    assert [(p["method"], p["status"]) for p in patches] == [("PATCH", 204)] * 2
    assert result["aborted"]["sent"] == 2 * CHUNK
    # The second run found the first by its fingerprint and resumed where HEAD said:
    # no second creation, nothing sent twice, several more PATCHes to the end.
    assert result["previousUploadUrl"] == url == result["resumedUrl"]
    head, *rest = result["resumed"]
    assert (head["method"], head["status"], head["offset"]) == ("HEAD", 200, str(2 * CHUNK))
    assert rest[0]["sent"] == str(2 * CHUNK) and len(rest) >= 3
    assert {(p["method"], p["status"]) for p in rest} == {("PATCH", 204)}
    assert rest[-1]["offset"] == str(size)
    ready = result["ready"]
    assert ready["status"] == "ready" and ready["size_bytes"] == size
    assert ready["playback_url"].startswith(result["api"] + "/media/videos/")
    assert result["playlistHead"] == "#EXTM3U"
    # uploadUrl + uploadLengthDeferred: HEAD, then PATCHes, the last one with the length.
    deferred = result["deferredRequests"]
    assert deferred[0]["method"] == "HEAD" and deferred[-1]["offset"] == str(size)
    assert result["deferred"] == {"status": result["deferred"]["status"], "size_bytes": size}
    created = result["created"]
    assert (created["title"], created["size_bytes"]) == (TITLE, size)
    assert created["room_id"] == result["room_id"]
    print(f"  {len(patches) + len(rest)} PATCHes of {CHUNK} bytes in {result['seconds']}s")


def test_going_live_from_the_ui_is_watched_in_another_page_and_kept(
    scenario_results: dict[str, Any],
) -> None:
    """Chromium publishes over WHIP (Go live), another page plays the live HLS, stop keeps it."""
    result = result_of(scenario_results, "live")
    assert result["stream_while_live"] == {"status": "live", "title": "Lena's show"}
    assert result["stop_button_shown"] and result["preview_shown"]
    assert result["viewer_badge"] == "LIVE"
    # The live playlist is a window of short segments, each decoding to video and audio
    # (Chromium's fake camera moves, its fake microphone beeps).
    assert "#EXT-X-ENDLIST" not in result["live_playlist"]
    for segment in result["segments"]:
        assert segment["status"] == 200, segment
        assert segment["streams"] == ["audio", "video"], segment
        assert segment["video_frames"] > 0 and segment["audio_frames"] > 0, segment
        assert segment["luma_variance"] > MIN_PICTURE_VARIANCE, segment
        assert segment["audio_peak"] > 0.01, segment
    # The viewer's player advances (polled, no fixed times).
    first, later = result["player"]["first"], result["player"]["later"]
    assert later["currentTime"] > first["currentTime"] > 0
    assert later["videoWidth"] > 0 and later["error"] is None
    # The client waits for three segments, so Chromium normally starts without an error
    # (printed below); a reload after one is the client's fallback, not a failure.
    assert result["viewer_frame_variance"] > MIN_PICTURE_VARIANCE
    # Stopped from the UI: the whole broadcast, closed, and a ready video in the library.
    after = result["stream_after_stop"]
    assert after["status"] == "ended" and after["ended_reason"] == "deleted"
    assert after["video_id"] == result["ids"]["stream"]
    final = result["final_playlist"]
    assert final["status"] == 200
    assert final["text"].rstrip().endswith("#EXT-X-ENDLIST")
    assert "segment_00000.ts" in final["text"]
    assert result["go_live_shown_again"] is True
    assert result["library_title"] == "Lena's show"
    assert result["archive_played"] > 0.5
    assert result["viewer_live_items_after_stop"] == "empty"
    # An older listing (the stream still live) arriving after the end's did not bring it back.
    assert result["viewer_live_items_after_a_late_answer"] == 0
    # The viewer's frozen player gave way to "Stream ended" and a link to the recording.
    ended = result["viewer_ended"]
    assert "Stream ended" in ended["text"] and ended["players_left"] == 0
    assert ended["recording_link"].endswith(f"/videos/{result['ids']['stream']}")
    print(f"  Go live click -> first segment listed: {result['click_to_first_segment']}s")
    print(
        f"  viewer's player: {first['currentTime']:.2f}s -> {later['currentTime']:.2f}s,"
        f" reloads after an error: {later['retries']}, errors: {result['player']['errors']}"
    )
    print(f"  native HLS: {result['native_hls']!r}; screenshots: {result['screenshots']}")


def test_a_knock_on_a_private_room_is_admitted_or_denied(
    scenario_results: dict[str, Any],
) -> None:
    # The outsiders' first look at the room is a 404 (it is private): that is the cue
    # for the waiting screen, and Chromium logs the failed fetch.
    result = result_of(scenario_results, "lobby", expected_console=("404 (Not Found)",))
    assert "private" in result["before"]
    assert result["waiting"].startswith("Waiting for a moderator")
    assert result["listed_name"] == "bob"
    # The lobby list fetched as alice's room opened (empty) reached her page after bob's
    # knock: the knock stayed listed.
    assert result["listed_after_a_late_answer"] == 1
    assert result["lobby_hidden_after"]
    assert "did not let you in" in result["carol_refused"]
    assert result["carol_in_room"] is False


def test_the_chat_pane_edits_scrolls_pages_groups_and_links(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "chat_pane")
    editor = result["editor"]
    assert editor["visible"] and editor["width"] > 100 and editor["height"] > 20, editor
    assert editor["value"] == "a message to edit"
    assert result["texts_after_edit"] == ["an edited message"]
    history = result["history"]
    assert result["posted"] == len(history) + 1

    # Opened at the newest message, in the list's own scroll (not the sidebar's).
    opened = result["opened"]
    assert opened["scrollable"] and opened["newest_in_view"], opened
    assert opened["count"] == 50, opened  # one page; the rest on scrolling up
    assert opened["sidebar_scrolled"] == 0 and opened["page_scrolled"] == 0, opened
    assert result["pinned"]["newest_in_view"], result["pinned"]
    # Scrolled up: a new message does not move the reader.
    assert result["reading"]["from_bottom"] > 200, result["reading"]

    # Scrolling to the top paged back (?before=) without losing the place or the order.
    assert result["after_paging"]["list_top"] > 0, result["after_paging"]
    texts = result["texts_after_paging"]
    assert texts == [
        "an edited message",
        *history,
        result["link_text"],
        "from bob",
        "pinned 1",
        "pinned 2",
        "while reading",
    ]

    # Compact: a one-line message is a line, consecutive ones from one author grouped.
    heights = result["heights"]
    assert heights["first"] < 40 and heights["grouped"] < 40, heights
    assert heights["grouped_flags"] == {
        "history 2": True,
        "from bob": False,
        "pinned 1": False,
        "pinned 2": True,
    }

    # Links: only the http(s) URL is an anchor, opened safely; the rest stays text.
    links = result["links"]
    assert links["text"] == result["link_text"]
    assert links["anchors"] == [
        {
            "href": "https://example.com/a?b=1",
            "text": "https://example.com/a?b=1",
            "rel": "noopener noreferrer",
            "target": "_blank",
        }
    ], links


def test_not_found_banned_kicked_and_left_get_clear_screens(
    scenario_results: dict[str, Any],
) -> None:
    # The refused requests (404 for no room, 403 for the ban, and a socket handshake a
    # ban or kick refuses when it races the removal) are logged by the browser.
    result = result_of(
        scenario_results,
        "room_screens",
        expected_console=(
            "status of 404 (Not Found)",
            "status of 403 (Forbidden)",
            "Unexpected response code: 403",
        ),
    )
    for case in ("bad_link", "unknown_id"):
        assert "not found" in result[case]["title"].lower(), result[case]
        assert not result[case]["knock_shown"], result[case]
    assert result["ban_status"] == 200 and result["kick_status"] == 200
    for case in ("banned", "banned_later", "reopened", "reopened_later"):
        state = result[case]
        assert state["screen"] == "banned" and "banned" in state["title"], (case, state)
        assert "retrying" not in state["status"].lower(), (case, state)
        assert state["live_tracks"] == 0 and state["sockets_open"] == 0, (case, state)
        assert not state["room_shown"] and not state["rejoin_shown"], (case, state)
    # Reopening the link never started the camera or a socket at all.
    assert result["reopened_later"]["tiles"] == 0
    kicked = result["kicked"]
    assert "removed you" in kicked["text"] and kicked["live_tracks"] == 0, kicked
    left = result["left_later"]
    assert left["screen"] == "left" and left["rejoin_shown"], left
    assert left["title"] == "You left Screens room" and left["url"] == "/chat", left
    assert left["live_tracks"] == 0 and left["sockets_open"] == 0, left
    rejoined = result["rejoined"]
    assert rejoined["room_shown"] and rejoined["url"] == result["room_path"], rejoined


def test_the_owner_mutes_and_removes_from_the_people_list(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "moderation_ui")
    assert result["owner_sees"] == ["Mute", "Remove", "Ban", "Make moderator"]
    assert result["owner_on_self"] == []
    assert result["member_sees"] == {"on_alice": [], "on_self": []}
    assert "A moderator muted you" in result["muted_notice"]
    assert result["unmute_shown"] and result["bob_mic_disabled"]
    assert "removed you" in result["removed"]


def test_the_pre_join_screen_comes_before_any_capture_and_remembers_devices(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "prejoin")
    first = result["first"]
    assert first["name"] == "alice"
    # The first capture is asked for by the pre-join screen, none before it.
    assert first["calls"] and all(call["view"] == "prejoin" for call in first["calls"]), first
    preview = result["preview"]
    assert preview["preview_width"] > 0 and preview["preview_video"] == "on"
    assert preview["cameras"] == ["fake_device_0"]
    assert len(preview["microphones"]) == 3
    # The chosen microphone is opened, remembered, and still chosen in a second tab.
    assert result["stored"]["microphoneId"] == result["chosen"]
    assert result["second_tab"]["microphone"] == result["chosen"]
    # Join hands the preview's tracks to the call: no capture at or after Join.
    alice = result["alice_in_call"]
    assert len(alice["calls"]) == result["calls_before_join"]
    assert all(call["view"] == "prejoin" for call in alice["calls"])
    assert alice["local_video"] == "on" and alice["mic_pressed"] == "true"
    # Camera and microphone off on the pre-join screen: nothing captured, nothing live.
    bob = result["bob_in_call"]
    assert len(bob["calls"]) == result["bob_calls_before_join"] == 1
    assert bob["live_tracks"] == 0 and bob["local_video"] == "off"
    assert bob["mic_pressed"] == "false" and bob["camera_pressed"] == "false"
    # A refused capture is explained once, and Carol joins (and connects) anyway.
    denied = result["carol_denied"]
    assert denied["status"].count("permission was denied") == 1, denied["status"]
    assert denied["join_enabled"]
    carol = result["carol_in_call"]
    assert carol["view"] == "room" and "permission was denied" in carol["notice"]
    # A microphone switch in the call: every connection sends the new one, the old stops.
    assert set(result["sent_before"]) == {result["chosen"]}
    assert set(result["sent_after"]) == {result["switch_to"]} != {result["chosen"]}
    assert result["alice_live_tracks_after_switch"] == 2


def test_the_person_speaking_gets_a_highlighted_tile(scenario_results: dict[str, Any]) -> None:
    result = result_of(scenario_results, "speaker")
    alice, bob = result["alice_id"], result["bob_id"]
    on_bob = result["on_bob"]
    assert on_bob[alice] == {"speaking": "true", "highlighted": True, "ring": True}
    assert on_bob[bob]["speaking"] == "false" and not on_bob[bob]["ring"]
    assert set(result["bob_samples_on_alice"]) == {"false"}
    assert all(tile["speaking"] == "false" for tile in result["after_mute"].values())
    print(f"  highlight {result['highlight_seconds']}s after both pages had frames")


def test_a_shared_screen_is_spotlighted_and_the_button_stops_it(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "spotlight")
    ids = result["ids"]
    assert result["before"]["layout"] == "grid"
    assert result["button_before"]["text"] == "Share screen"
    for name, layout in result["spotlights"].items():
        tiles = layout["tiles"]
        share = tiles[ids["bob"]]
        strip = [tile for user, tile in tiles.items() if user != ids["bob"]]
        assert share["spotlight"] == "true", name
        for tile in strip:
            assert tile["spotlight"] == "false", name
            assert share["width"] > 3 * tile["width"], (name, tiles)
            assert share["height"] > 2 * tile["height"], (name, tiles)
    assert result["sharing_button"] == {**result["sharing_button"], "text": "Stop sharing"}
    assert result["stopped_button"]["text"] == "Share screen"
    assert all(tile["spotlight"] == "false" for tile in result["after"]["tiles"].values())


def test_on_a_phone_the_controls_stay_in_reach_and_the_page_is_one_screen(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "phone_layout")
    assert result["prejoin"] == {"width": 390, "join_visible": True}
    for case in ("in_call", "chat_open", "scrolled_back", "after_scroll", "people_open"):
        layout = result[case]
        assert layout["document_height"] <= 844 and layout["document_width"] <= 390, case
        assert layout["scroll_y"] == 0, case
        assert all(layout["in_view"].values()), (case, layout["in_view"])
    assert result["in_call"]["grid_shown"] and not result["in_call"]["sidebar_shown"]
    chat = result["chat_open"]
    assert chat["chat_input_in_view"] and chat["messages_in_view"] and not chat["grid_shown"]
    assert result["scrolled_back"]["messages_scroll_top"] < chat["messages_scroll_top"]
    people = result["people_open"]
    assert people["people_in_view"] and not people["chat_input_in_view"]
    assert result["unread"] == "1" and result["unread_after_open"] is None
    desktop = result["desktop"]
    assert desktop["document_height"] <= 800
    assert desktop["grid_shown"] and desktop["chat_input_in_view"] and desktop["people_in_view"]
    assert desktop["in_view"]["leave-call"] and not desktop["in_view"]["show-chat"]


def test_a_public_room_link_is_copied_and_rejoin_goes_straight_back(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "copy_link")
    copy = result["copy"]
    assert copy["visible"] and copy["name"] == "Copy link"
    assert copy["feedback"] == "Link copied" and copy["live_region"] == "polite"
    assert copy["clipboard"] == result["url"]
    assert result["left"] == {"title": "You left Open room", "rejoin": True, "tiles": 0}
    assert result["rejoined_view"] == "room"
    assert result["reloaded_view"] == "room"
    # (Other scenarios on the same server have public rooms of their own.)
    assert {"Open room", "Second room"} <= set(result["listed"])
    assert result["list_busy"] == "false"
    assert result["reopened_view"] == "prejoin"


def test_the_video_library_is_a_view_with_a_grid_a_player_rename_and_delete(
    scenario_results: dict[str, Any],
) -> None:
    # The refused upload's 415 and the deleted video's files show up as failed loads.
    result = result_of(
        scenario_results,
        "video_library",
        expected_console=("415 (Unsupported Media Type)", "404 (Not Found)"),
    )
    assert result["call_hidden_in_library"] and result["tab_current"] == "page"
    assert result["bob_url"].endswith("/videos")
    # Not a video: said in the form, and no entry anywhere (not even on the server).
    assert "Not a video" in result["refused_label"]
    assert result["server_entries_after_refusal"] == 0
    # Followed live by the other member to ready, with a thumbnail.
    assert result["bob_statuses"][-1] == "ready"
    assert result["thumbnail"]["width"] > 0
    assert result["bob_actions_on_alices"] == ["video-play"]
    assert result["alice_actions_on_hers"] == ["video-play", "video-rename", "video-delete"]
    # Failed in processing: shown failed with its reason; only its uploader may remove it.
    assert "no video track" in result["failed_reason"]
    assert result["bob_actions_on_failed"] == []
    # A large player at the video's own address, also after a reload.
    assert result["player_width"] > 560 and result["phone_player_width"] > 300
    assert result["played"] > 0.5 and result["played_after_reload"] > 0.5
    assert result["empty_title_error"]
    assert "deleted" in result["bob_player_after_delete"]
    assert result["bob_video_elements_after_delete"] == 0
    assert result["call_back"] is True
    print(f"  ready after {result['ready_seconds']}s; screenshots: {result['screenshots']}")


def test_the_live_panel_hands_obs_its_whip_url_and_key_and_viewers_see_the_end(
    scenario_results: dict[str, Any],
) -> None:
    # The viewer presses Watch before the first segment: its playlist polls meet 404s.
    result = result_of(scenario_results, "live_obs", expected_console=("404 (Not Found)",))
    assert result["state_before"].startswith("Waiting for OBS")
    assert result["whip_url"] == result["expected_whip_url"]
    assert result["whip_url"].startswith("http://127.0.0.1:")
    # The key: hidden until revealed, never shown as text, copyable, kept over a reload.
    assert result["key_type_before"] == "password" and result["key_matches"]
    assert result["key_visible_text"] is False
    assert result["key_type_revealed"] == "text" and result["reveal_pressed"] == "true"
    assert result["copied"] == {"key": True, "url": result["whip_url"]}
    assert "Settings > Stream > Service: WHIP" in result["hint"]
    reloaded = {"stream_id": True, "key_type": "password", "key_matches": True}
    assert result["after_reload"] == reloaded
    # What OBS would do with them works, and the panel says so.
    assert result["encoder_answer"] == 201
    assert result["state_live"].startswith("Live")
    assert "Stream ended" in result["viewer_ended"] and result["viewer_players_left"] == 0
    assert result["recording_played"] > 0.5
    assert result["stream_after"] == {"status": "ended", "ended_reason": "stopped"}
    print(f"  screenshots: {result['screenshots']}")


def test_a_muted_members_message_is_refused_by_the_composer_not_lost(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "chat_muted")
    assert result["note_before_mute"] is False
    assert result["note_after_send"].startswith("You are muted in this room")
    assert "not sent" in result["note_after_send"]
    assert result["input_after_send"] == "can everyone hear me?"
    assert result["note_is_alert"] == "alert"
    assert 0 <= result["note_below_composer_px"] < 40
    assert result["note_after_reload"].startswith("You are muted in this room")
    assert result["messages_at_alice"].count("can everyone hear me?") == 1


def test_api_docs_render_offline_from_the_apps_own_files(scenario_results: dict[str, Any]) -> None:
    result = result_of(scenario_results, "api_docs")
    assert result["operations"] > 20
    assert "videochat" in result["docs_title"]
    # Everything the pages loaded came from the server itself (no CDN, no fonts).
    assert result["origins"] == [result["server_origin"]]
    assert result["failed_requests"] == []


def test_namesake_guests_are_told_apart_and_a_guest_is_warned_before_signing_out(
    scenario_results: dict[str, Any],
) -> None:
    # The new alice2 opening the private room: GET /rooms/{id} is a 404 to outsiders; a
    # request the room's page had in flight when the guest account ended gets a 401.
    result = result_of(
        scenario_results,
        "guests",
        expected_console=("404 (Not Found)", "status of 401 (Unauthorized)"),
    )
    first, second = result["tags"]["first"], result["tags"]["second"]
    assert first != second
    alices = sorted([f"alice2 {first}", f"alice2 {second}"])
    for name, seen in result["seen"].items():
        you = {"first": f"alice2 {first}", "second": f"alice2 {second}", "bob": "bob"}[name]
        # People list: both alice2 carry their tag, bob (a unique name) none.
        people = sorted(person.removesuffix(" (you)") for person in seen["people"])
        assert people == sorted([*alices, "bob"]), (name, seen)
        assert f"{you} (you)" in seen["people"], (name, seen)
        # Chat: each message's author with the sender's tag, the same on every page.
        assert seen["authors"] == [f"alice2 {first}", f"alice2 {second}"], (name, seen)
        # Tiles: the two remote ones show the names the same way.
        others = sorted(person for person in [*alices, "bob"] if person != you)
        assert [tile for tile in seen["tiles"] if tile in others] == others, (name, seen)
    assert result["seen"]["first"]["whoami"] == f"alice2 {first} (guest)"
    assert "You are a guest: signing out loses access to your private rooms" in result["warning"]
    assert result["focused_on_open"] == "sign-out-cancel"
    assert result["still_in_room_after_cancel"] is True
    assert result["signed_in_after_escape"] == result["ids"]["first"]
    assert result["stored_session_after_sign_out"] is None
    # The private room was not left with an owner nobody can be: its moderator has it.
    assert result["bob_has_owner_actions"] is True
    assert result["room_owner"] == result["ids"]["bob"]
    assert result["room_roles"] == {
        result["ids"]["bob"]: "owner",
        result["ids"]["second"]: "member",
    }
    assert result["ids"]["again"] != result["ids"]["first"]


def test_every_view_passes_axe_and_every_control_is_reached_by_keyboard(
    scenario_results: dict[str, Any],
) -> None:
    # The not-found view: GET /rooms/{id} is a 404 (what the view is about).
    result = result_of(scenario_results, "accessibility", expected_console=("404 (Not Found)",))
    views = result["views"]
    assert list(views) == list(VIEWS)
    serious = {name: seen["serious"] for name, seen in views.items() if seen["serious"]}
    assert serious == {}, json.dumps(serious, indent=1)
    for name, seen in views.items():
        keyboard = seen["keyboard"]
        assert keyboard["controls"] > 0, name
        assert keyboard["not_reached"] == [], (name, keyboard)
        assert keyboard["untabbable"] == [], (name, keyboard)
        assert keyboard["clickable_divs"] == [], (name, keyboard)
    minor = {name: [v["id"] for v in seen["violations"]] for name, seen in views.items()}
    print(f"  axe, moderate and minor: {minor}")
