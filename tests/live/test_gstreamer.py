"""WHIP from a publisher that is not aiortc: GStreamer's webrtcbin with an RSA certificate.

Issue 15: aiortc alone offers ECDSA DTLS suites only, so GStreamer answered "no shared
cipher" and the stream never went live (``videochat.live.dtls`` is the fix). The
scenario (``scenarios/gstreamer.py``) runs in a loopback-only network namespace; Debian's
GStreamer and ffmpeg come from ``scripts/ensure-test-tools.sh`` (``make test``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.live.netns import netns_prefix, run_scenario, skip_or_fail
from tests.live.scenarios.gstreamer import SYSTEM_PYTHON

pytestmark = [pytest.mark.netns]

GSTREAMER_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('Nice', '0.1');"
    "from gi.repository import Gst, Nice; Gst.init(None);"
    "missing = [e for e in ('webrtcbin', 'nicesrc', 'dtlsenc', 'vp8enc', 'opusenc')"
    " if Gst.ElementFactory.find(e) is None]; assert not missing, missing"
)


def _require_tools() -> None:
    if not Path(SYSTEM_PYTHON).exists() or shutil.which("ffprobe") is None:
        skip_or_fail("needs /usr/bin/python3 and ffprobe (scripts/ensure-test-tools.sh)")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", GSTREAMER_PROBE], capture_output=True, text=True, timeout=60
    )
    if probe.returncode:
        skip_or_fail(f"GStreamer's webrtcbin is not usable: {probe.stderr.strip()[-500:]}")


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """Run the GStreamer scenario once; the tests below read its result."""
    _require_tools()
    result = run_scenario(netns_prefix(), "tests.live.scenarios.gstreamer", timeout=240)
    if not result["ok"]:
        pytest.fail(
            f"{result['error']}\n{result['traceback']}\nserver log:\n{result['server_log']}",
            pytrace=False,
        )
    return result


def test_gstreamer_with_an_rsa_certificate_connects(published: dict[str, Any]) -> None:
    events = published["events"]
    answer = next(e for e in events if e["event"] == "answer")
    assert answer["status"] == 201, answer
    assert published["publisher_state"] == "connected", (
        f"{events}\npublisher log:\n{published['publisher_log']}\n"
        f"server log:\n{published['server_log']}"
    )
    # The point of the test: the publisher's certificate is RSA, ours stays ECDSA.
    assert published["publisher_certificate"] == "rsa-2048"
    assert published["server_certificate"] == "ec-secp256r1"
    assert published["stream_live"] == "live"
    # Loopback only, on both ends (TESTING.md), and media flowed.
    stats = [e for e in events if e["event"] == "stats"][-1]
    assert stats["local_addresses"] == stats["remote_addresses"] == ["127.0.0.1"]
    assert stats["packets_sent"] > 0


def test_ffprobe_decodes_the_live_hls(published: dict[str, Any]) -> None:
    probe = published["ffprobe"]
    assert probe["returncode"] == 0, probe["stderr"]
    video = [s for s in probe["streams"] if s["codec_type"] == "video"]
    assert video, probe
    assert (video[0]["width"], video[0]["height"]) == (640, 480)
    assert int(video[0]["nb_read_frames"]) > 0
    assert any(s["codec_type"] == "audio" for s in probe["streams"])


def test_the_publisher_ends_its_session_with_delete(published: dict[str, Any]) -> None:
    deleted = [e for e in published["events"] if e["event"] == "deleted"]
    assert [e["status"] for e in deleted] == [200]
    after = published["after"]
    assert after["status"] == "ended" and after["ended_reason"] == "deleted"
