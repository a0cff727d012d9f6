"""WHIP ingest for real: an aiortc publisher, the server's aiortc + PyAV, live HLS.

The scenario (``scenarios/publish.py``) runs as its own process inside a loopback-only
network namespace, with the server (SQLite, in-process broker) started there too; it
prints a JSON result that these assertions read. Run with ``-s`` for the measurements.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.live.netns import netns_prefix, run_scenario

pytestmark = [pytest.mark.netns]


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """Run the publish scenario once; every test below reads its result."""
    result = run_scenario(netns_prefix(), "tests.live.scenarios.publish", timeout=180)
    if not result["ok"]:
        pytest.fail(
            f"{result['error']}\n{result['traceback']}\nserver log:\n{result['server_log']}",
            pytrace=False,
        )
    return result


def test_whip_publish_answers_and_refuses_a_second_publisher(published: dict[str, Any]) -> None:
    assert published["a_status"] == 201
    assert published["a_content_type"] == "application/sdp"
    # Absolute (API answers carry absolute URLs); RFC 9725 allows either.
    location = urlsplit(published["a_location"])
    assert location.scheme == "http" and location.netloc
    assert location.path.startswith(f"/whip/{published['ids']['a']}/sessions/")
    assert published["second_publisher"]["status"] == 409
    timings = published["timings"]
    print(
        f"\n  WHIP POST -> answer {timings['post_to_answer']}s, -> connected "
        f"{timings['post_to_connected']}s, -> first playable segment "
        f"{timings['post_to_first_playable_segment']}s"
    )


def test_live_hls_has_moving_video_and_audio(published: dict[str, Any]) -> None:
    playlist = published["live_playlist"]
    assert "#EXT-X-ENDLIST" not in playlist and "#EXT-X-MEDIA-SEQUENCE:" in playlist
    segment = published["segment"]
    assert segment["content_type"] == "video/mp2t"
    assert segment["streams"] == ["audio", "video"]
    # ~2 s segments of a 20 fps picture with 1024-sample AAC frames at 48 kHz.
    assert 30 <= segment["video_frames"] <= 50
    assert segment["audio_frames"] >= 70
    assert segment["luma_variance"] > 100  # the stripes, not a flat picture
    assert segment["audio_peak"] > 0.05  # the tone, not silence
    assert published["a_state_live"] == "live"
    latency = published["latency"]
    assert len(latency) >= 3
    for entry in latency:
        # About 40 frames (2 s at 20 fps) on a quiet machine; a loaded one drops frames at
        # the publisher, so only the order of magnitude is asserted (timing is benched).
        assert 10 <= entry["frames"] <= 60
    last = sorted(entry["last_frame_to_servable"] for entry in latency)
    first = sorted(entry["first_frame_to_servable"] for entry in latency)
    print(
        f"\n  capture -> servable: last frame of a segment median {last[len(last) // 2]}s, "
        f"first frame median {first[len(first) // 2]}s; server CPU for one 640x480@20 "
        f"stream {published['server_cpu_per_stream']} core (load {published['load_average']})"
    )


def test_delete_ends_with_a_closed_playlist_and_a_ready_video(published: dict[str, Any]) -> None:
    assert published["delete_status"] == 200
    after = published["a_after"]
    assert after["status"] == "ended" and after["ended_reason"] == "deleted"
    assert after["video_id"] == published["ids"]["a"]
    final = published["a_final_playlist"]
    assert final.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in final and "#EXT-X-MEDIA-SEQUENCE:0" in final
    (video,) = [v for v in published["videos_after_a"] if v["id"] == published["ids"]["a"]]
    assert video["status"] == "ready" and video["title"] == "Stream A"
    assert (video["width"], video["height"]) == (640, 480)
    assert video["duration_seconds"] > 5
    master = published["archive_master"]
    assert master["status"] == 200 and "stream/index.m3u8" in master["text"]
    assert 'CODECS="avc1.' in master["text"] and "mp4a.40.2" in master["text"]
    assert published["archive_thumbnail"] == [200, "image/jpeg"]
    assert published["publish_after_end"] == 410


def test_h264_publisher_stopped_through_the_api(published: dict[str, Any]) -> None:
    assert published["b_answer_has_h264"] and not published["b_answer_has_vp8"]
    stop = published["b_stop"]
    assert stop["status"] == "ended" and stop["ended_reason"] == "stopped"
    assert stop["video_id"] == published["ids"]["b"]
    assert published["b_publisher_closed"] == "closed"


def test_a_vanished_publisher_times_out(published: dict[str, Any]) -> None:
    after = published["c_after"]
    assert after["status"] == "ended" and after["ended_reason"] == "timeout"
    assert after["video_id"] == published["ids"]["c"]
    # publisher_timeout_seconds is 8 in the scenario; the watchdog looks every 0.2 s.
    # Not before the timeout; the upper bound only catches "never" on a busy machine.
    assert 7.5 <= published["c_seconds_to_end"] <= 40


def test_the_room_hears_about_it(published: dict[str, Any]) -> None:
    frames = published["frames"]
    ids = published["ids"]
    started = [f["stream_id"] for f in frames if f["type"] == "live_started"]
    assert started == [ids["a"], ids["b"], ids["c"]]
    ended = {f["stream_id"]: f for f in frames if f["type"] == "live_ended"}
    assert {key: ended[ids[key]]["reason"] for key in ids} == {
        "a": "deleted",
        "b": "stopped",
        "c": "timeout",
    }
    assert all(ended[ids[key]]["video_id"] == ids[key] for key in ids)
    ready = {f["video_id"] for f in frames if f["type"] == "video_status"}
    assert ready == set(ids.values())
