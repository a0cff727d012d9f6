"""Recording calls on a real Janus: aiortc publishers, two rooms at once, library videos.

The scenario (``scenarios/record.py``) runs inside a network namespace of its own with
loopback and a veth pair whose two ends stay in it: Janus gathers no ICE candidates on
loopback interfaces, so it and the publishers meet on the veth's address; nothing
leaves the namespace.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.live.netns import netns_prefix, run_scenario
from tests.sfu import janus_server

pytestmark = pytest.mark.slow

VETH = (
    "ip link set lo up && ip link add vc0 type veth peer name vc1 && "
    "ip addr add 10.77.0.1/32 dev vc0 && ip link set vc1 up && ip link set vc0 up && "
    'exec "$@"'
)
# How soon a recording is ready (issue 17's target: within 2x the call) is a benchmark
# figure, not asserted here: on a loaded two-core machine it varies tenfold. The scenario
# reports it (`ready_after`) and waits for "ready" with a bounded poll.
DURATION_TOLERANCE = 1.0


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    janus_server.require()
    prefix = netns_prefix()
    # The same namespace, with the veth pair (netns_prefix checked unshare works here).
    prefix = [*prefix[: prefix.index("-c") + 1], VETH, "sh"]
    result = run_scenario(prefix, "tests.sfu.scenarios.record", timeout=240)
    assert result["ok"], result.get("error")
    return result


@pytest.mark.parametrize("room", ["first", "second"])
def test_a_recorded_call_becomes_a_ready_library_video_of_its_length(
    recorded: dict[str, Any], room: str
) -> None:
    call = recorded["rooms"][room]
    assert call["status"] == "ready", call
    assert call["uploader_is_owner"]
    # Counted in its owner's storage quota, as an upload is (its composed source's bytes).
    assert call["size_bytes"] and call["size_bytes"] > 10_000, call
    # Read back from the HLS rendition by PyAV, against the time between the API's answers.
    assert abs(call["duration"] - call["window"]) <= DURATION_TOLERANCE, call
    assert call["api_duration"] == pytest.approx(call["duration"], abs=0.2)


def test_every_publisher_has_a_tile_and_every_voice_is_heard(recorded: dict[str, Any]) -> None:
    first = recorded["rooms"]["first"]
    # Three publishers with grey levels 70, 130 and 190 (stripes 24 either side) in a 2x2
    # grid; the fourth cell black (luma 16 or below).
    *tiles, empty = first["tile_levels"]
    darkest, middle, brightest = sorted(tiles)
    assert 30 < darkest < 100 < middle < 160 < brightest, first
    assert empty < 30, first
    assert first["audio_peak"] > 0.1, first
    second = recorded["rooms"]["second"]
    assert all(level > 30 for level in second["tile_levels"]), second


def test_janus_wrote_raw_files_and_the_jobs_removed_them(recorded: dict[str, Any]) -> None:
    # An audio and a video file per publisher, five publishers in two rooms.
    assert recorded["raw_files_while_recording"] == 10
    assert recorded["raw_files_left"] == []
