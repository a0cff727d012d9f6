"""Calls in real Chromium pages, with real WebRTC between them: the mesh, a failed and
a relayed connection, reconnects, and calls on a real Janus SFU.

Each test reads the result of one scenario (``tests/web/scenarios/``), run by the
``scenario_results`` fixture (``conftest.py``) in one process inside a loopback-only
network namespace. Run with ``-s`` to see the measured connect and first-frame times.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.results import LOOPBACK, MIN_PICTURE_VARIANCE, result_of

pytestmark = [pytest.mark.browser, pytest.mark.netns]


# Test → (scenario, time budget in seconds), in the order the scenarios run.
# The SFU ones last: they add (and remove) a network interface for Janus, with
# their own Chromium.
SCENARIOS: dict[str, tuple[str, float]] = {
    "test_two_then_three_people_connect_in_a_full_mesh": ("mesh", 150),
    "test_an_unreachable_relay_is_reported": ("ice_failure", 120),
    "test_a_dropped_socket_rebuilds_the_call_and_a_second_tab_takes_it_over": (
        "reconnect_tabs",
        150,
    ),
    "test_six_people_in_one_call_on_the_sfu": ("sfu_call", 240),
    "test_a_call_past_the_threshold_moves_onto_the_sfu_and_stays": ("sfu_switch", 150),
    "test_everyone_sees_a_recording_the_owner_starts_and_stops_in_the_call": ("sfu_recording", 150),
}


def _assert_full_mesh(snapshot: dict[str, Any], ids: dict[str, str]) -> None:
    """Every page is connected to every other over loopback, with a real picture."""
    for name, seen in snapshot.items():
        others = {ids[other] for other in snapshot if other != name}
        assert set(seen["peers"]) == others, f"{name} is connected to the wrong people"
        assert seen["remote_tiles"] == len(others), f"{name} shows the wrong number of tiles"
        for other in others:
            peer = seen["peers"][other]
            where = f"{name} -> {other}"
            assert peer["connectionState"] == "connected", where
            assert peer["nominated"], where
            assert peer["localAddress"] == LOOPBACK, where
            assert peer["remoteAddress"] == LOOPBACK, where
            assert peer["framesDecoded"] > 0, where
            # The upload is shared out between the people in the mesh.
            assert peer["videoMaxBitrate"], where
            picture = seen["pictures"][other]
            assert picture["screenshot_variance"] > MIN_PICTURE_VARIANCE, (where, picture)
            assert picture["frame_variance"] > MIN_PICTURE_VARIANCE, (where, picture)


def _print_timings(label: str, snapshot: dict[str, Any]) -> None:
    for name, seen in snapshot.items():
        for other, timing in seen["timings"].items():
            print(f"  {label} {name} <- {other[:8]}: {timing}")


def test_two_then_three_people_connect_in_a_full_mesh(scenario_results: dict[str, Any]) -> None:
    result = result_of(scenario_results, "mesh")
    assert "dropped candidates: no description of theirs yet" in result["stray_candidates"]
    ids = result["ids"]
    _assert_full_mesh(result["two"], {name: ids[name] for name in ("alice", "bob")})
    _assert_full_mesh(result["three"], ids)
    assert result["local_tiles"] == {"alice": 1, "bob": 1, "carol": 1}
    print(f"  until all connected: {result['seconds_until_all_connected']}")
    _print_timings("two", result["two"])
    _print_timings("three", result["three"])


def test_an_unreachable_relay_is_reported(scenario_results: dict[str, Any]) -> None:
    result = result_of(scenario_results, "ice_failure")
    for name, text in result["notices"].items():
        assert "relay (TURN) server" in text, name
    view = result["alice_view_of_bob"]
    assert view["policy"] == "relay"
    assert view["connection_state"] in {"new", "checking"}
    assert view["tile_connection"] == "stalled"


def _assert_rebuilt(seen: dict[str, Any], who: list[str], where: str) -> None:
    """The connections to ``who`` are new ones, connected and decoding frames."""
    for other in who:
        peer = seen[other]
        assert peer["rebuilt"] is True, (where, other)
        assert peer["state"] == "connected", (where, other)
        assert peer["framesDecoded"] > 0, (where, other)


def test_a_dropped_socket_rebuilds_the_call_and_a_second_tab_takes_it_over(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "reconnect_tabs")
    ids = result["ids"]
    for how in ("closed", "silent"):
        drop = result[how]
        rebuilt = drop["rebuilt"]
        # Alice starts every connection over; the others rebuild theirs to her only.
        _assert_rebuilt(rebuilt["alice"], [ids["bob"], ids["carol"]], f"{how}: alice")
        for name, other in (("bob", "carol"), ("carol", "bob")):
            _assert_rebuilt(rebuilt[name], [ids["alice"]], f"{how}: {name}")
            assert rebuilt[name][ids[other]]["rebuilt"] is False, f"{how}: {name}"
        before, after = drop["alice_frames"]["before"], drop["alice_frames"]["after"]
        assert all(after[name] > before[name] for name in before), (how, before, after)
        assert drop["remote_tiles"] == {"alice": 2, "bob": 2, "carol": 2}, how
        back, call = drop["socket_back_seconds"], drop["call_back_seconds"]
        print(f"  {how}: socket back {back}s, call {call}s")
    assert result["closed"]["alice_sockets_made"] == 2
    assert result["silent"]["alice_sockets_made"] == 3
    assert result["participants_after_drops"] == 3

    second = result["second_tab"]
    _assert_rebuilt(second["alice_sees"], [ids["bob"]], "alice -> bob's second tab")
    assert second["alice_sees"][ids["carol"]]["rebuilt"] is False
    first_tab = second["first_tab"]
    assert "in another tab" in first_tab["notice"]
    assert first_tab["peers"] == [] and first_tab["remote_tiles"] == 0
    assert first_tab["chat_input_enabled"] is True
    assert second["people_in_alice_list"] == 3  # one Bob, not two

    back = result["first_tab_back"]
    assert back["bob_peers"] == sorted([ids["alice"], ids["carol"]])
    _assert_rebuilt(back["alice_sees"], [ids["bob"]], "alice -> bob's first tab again")
    assert back["notice"] is None


def test_six_people_in_one_call_on_the_sfu(scenario_results: dict[str, Any]) -> None:
    result = result_of(
        scenario_results,
        "sfu_call",
        # The banned person's grant request is refused on purpose (403).
        expected_console=("status of 403 (Forbidden)",),
    )
    ids = result["ids"]
    assert result["people"] == 6
    for name, videos in result["videos"].items():
        others = {ids[other] for other in ids if other != name}
        assert set(videos) == others, f"{name} sees the wrong videos"
        assert all(videos[o]["width"] > 0 and not videos[o]["paused"] for o in others), name
    # One publication and five subscriptions per page, each connected with frames,
    # each ending at one of Janus's own sockets and never at another page.
    janus_ports = set(result["janus_ports"])
    for name, pairs in result["pairs"].items():
        others = {ids[other] for other in ids if other != name}
        assert set(pairs) == others | {"publisher"}, name
        for peer, report in pairs.items():
            where = f"{name} -> {peer}"
            assert report["state"] == "connected", where
            assert report["remotePort"] in janus_ports, where
            assert report["remotePort"] not in result["page_ports"], where
            assert report["framesEncoded" if peer == "publisher" else "framesDecoded"] > 0, where
    # The kicked person's tile left every other page at once; the banned one got nothing.
    assert result["kick_seconds"] < 10
    refused = result["refused"]
    assert refused["peers"] == 0 and not refused["published"], refused
    assert any("banned" in note for note in refused["notes"]), refused
    print(f"  SFU first frames: {result['first_frames']}, CPU: {result['cpu']}")


def test_a_call_past_the_threshold_moves_onto_the_sfu_and_stays(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "sfu_switch")
    ids = result["ids"]
    # Two people: a mesh, each connection ending at the other page, nobody publishing.
    assert result["published_in_mesh"] == []
    alice_to_bob = result["mesh_pairs"]["alice"][ids["bob"]]
    bob_to_alice = result["mesh_pairs"]["bob"][ids["alice"]]
    # Each side's selected pair may be on another interface than the other side's (the
    # namespace has loopback and a veth), so no port equality: neither ends at Janus.
    janus_ports = set(result["janus_ports_in_mesh"])
    for pair in (alice_to_bob, bob_to_alice):
        assert pair["remotePort"] not in janus_ports, (pair, janus_ports)
    # Three: everyone publishes once and gets the others from Janus (the scenario
    # checked each pair ends at a Janus socket and the videos play).
    for name, pairs in result["on_sfu"].items():
        others = {ids[o] for o in ids if o != name}
        assert set(pairs) == others | {"publisher"}, name
    # Back to two: still on the SFU.
    for name, pairs in result["after_leaving"].items():
        assert "publisher" in pairs and ids["carol"] not in pairs, name
    # Camera off and on, screen share and back work through the publication.
    toggles = result["toggles"]
    assert toggles["frames_after"] > toggles["frames_before"], toggles
    assert abs(toggles["screen"][0] / toggles["screen"][1] - 4 / 3) > 0.05, toggles
    assert abs(toggles["camera"][0] / toggles["camera"][1] - 4 / 3) < 0.05, toggles
    print(f"  mesh to SFU in {result['switch_seconds']}s")


def test_everyone_sees_a_recording_the_owner_starts_and_stops_in_the_call(
    scenario_results: dict[str, Any],
) -> None:
    result = result_of(scenario_results, "sfu_recording")
    before = result["before"]
    # On the SFU, only the owner gets a Record button; nobody sees the sign yet.
    assert before["alice"]["button"] and before["alice"]["pressed"] == "false", before
    assert before["alice"]["label"] == "Record"
    assert not before["bob"]["button"], before
    assert not any(state["indicator"] for state in before.values()), before
    for name, state in result["recording"].items():
        assert state["indicatorText"] == "Recording", (name, state)
        assert state["indicatorRole"] == "status"
        assert state["announced"] == "Recording started", (name, state)
    assert not result["recording"]["bob"]["button"]
    assert set(result["recording"]) == {"alice", "bob", "carol"}  # carol: from welcome
    for name, state in result["stopped"].items():
        assert state["announced"] == "Recording stopped", (name, state)
        assert any("Videos tab" in text for text in state["toasts"]), (name, state)
    assert result["stopped"]["alice"]["pressed"] == "false"
    assert result["stopped"]["alice"]["label"] == "Record"
    # The recording is in the library (its transcode may still run).
    assert len(result["videos"]) == 1, result["videos"]
    assert result["videos"][0]["status"] in ("processing", "ready"), result["videos"]
