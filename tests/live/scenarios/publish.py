"""Scenario: publish by WHIP from aiortc, watch the live HLS, end it three ways.

Runs inside a loopback-only network namespace (``test_webrtc.py`` starts it); the
server runs in a subprocess there, on SQLite. Prints one ``RESULT_MARK`` + JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import av
import httpx
import websockets

import tests.live.loopback_ice.sitecustomize  # noqa: F401  (loopback ICE here too)
from tests.live.publisher import Publisher, read_frame_number
from tests.web.harness import RESULT_MARK, ServerProcess

LOOPBACK_ICE = Path(__file__).resolve().parents[1] / "loopback_ice"
SERVER_SETTINGS = {
    "PYTHONPATH": str(LOOPBACK_ICE),
    # Long enough that a busy 2-core machine stalling media for a few seconds does
    # not end the healthy streams A and B.
    "VIDEOCHAT_LIVE__PUBLISHER_TIMEOUT_SECONDS": "8",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _server_pid() -> int:
    """The server: our child process."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    return int(entry.name)
    raise RuntimeError("server process not found")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _pin(pid: int, cpu: int) -> None:
    """Pin every thread of a process to one core (TESTING.md: server and load apart)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {cpu})


def _uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _entries(text: str) -> list[tuple[int, float, str]]:
    """(media sequence number, duration, uri) of each listed segment."""
    sequence, duration, out = 0, 0.0, []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line and not line.startswith("#"):
            out.append((sequence, duration, line))
            sequence += 1
    return out


def _decode(data: bytes) -> dict[str, Any]:
    """What a segment holds: frame counts, picture variety, audio level."""
    video = audio = 0
    variances: list[float] = []
    peak = 0.0
    with av.open(io.BytesIO(data), format="mpegts") as container:
        kinds = sorted(stream.type for stream in container.streams)
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                video += 1
                if video == 1:
                    luma = bytes(frame.reformat(format="gray").planes[0])
                    sample = luma[:: max(1, len(luma) // 4000)]
                    variances.append(statistics.pvariance(sample))
            else:
                audio += 1
                floats = memoryview(bytes(frame.planes[0])).cast("f")  # AAC decodes to fltp
                peak = max(peak, max(abs(value) for value in floats[::16]))
    return {
        "streams": kinds,
        "video_frames": video,
        "audio_frames": audio,
        "luma_variance": round(variances[0], 1) if variances else 0.0,
        "audio_peak": round(peak, 3),
    }


async def _frames(url: str, path: str, seen: list[dict[str, Any]]) -> None:
    async with websockets.connect(url.replace("http", "ws", 1) + path, max_queue=None) as socket:
        async for raw in socket:
            frame = json.loads(raw)
            if frame.get("type") in {"live_started", "live_ended", "video_status"}:
                seen.append(frame)


async def _until(what: str, probe: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def _playlist(http: httpx.AsyncClient, pull: str) -> str | None:
    response = await http.get(pull)
    return response.text if response.status_code == 200 and _uris(response.text) else None


async def _stream_state(http: httpx.AsyncClient, stream_id: str, token: str) -> dict[str, Any]:
    response = await http.get(f"/live-streams/{stream_id}", headers=_auth(token))
    body: dict[str, Any] = response.json()
    return body


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _new_stream(http: httpx.AsyncClient, room: str, token: str, title: str) -> Any:
    response = await http.post(
        f"/rooms/{room}/live-stream", json={"title": title}, headers=_auth(token)
    )
    response.raise_for_status()
    return response.json()


async def _watch_listing(
    http: httpx.AsyncClient, pull: str, seconds: float
) -> list[tuple[int, str, float]]:
    """Poll the live playlist: (sequence, uri, wall clock it was first listed) per segment."""
    listed: dict[int, tuple[int, str, float]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = await _playlist(http, pull)
        now = time.time()
        for sequence, _, uri in _entries(text or ""):
            listed.setdefault(sequence, (sequence, uri, now))
        await asyncio.sleep(0.05)
    return sorted(listed.values())


async def _latencies(
    http: httpx.AsyncClient,
    base: str,
    listed: list[tuple[int, str, float]],
    captured: list[float],
) -> list[dict[str, float]]:
    """Capture -> servable, per segment, for its first and its last frame.

    The frame numbers are read from the decoded pictures (the publisher's barcode), so
    the capture times are exact.
    """
    out = []
    for sequence, uri, listed_at in listed:
        data = (await http.get(f"{base}/{uri}")).content
        with av.open(io.BytesIO(data), format="mpegts") as container:
            numbers = [read_frame_number(frame) for frame in container.decode(video=0)]
        out.append(
            {
                "sequence": sequence,
                "frames": len(numbers),
                "first_frame_to_servable": round(listed_at - captured[numbers[0]], 3),
                "last_frame_to_servable": round(listed_at - captured[numbers[-1]], 3),
            }
        )
    return out


async def scenario(url: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    pid = _server_pid()
    if (os.cpu_count() or 1) >= 2:
        _pin(pid, 0)
        os.sched_setaffinity(0, {1})
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        alice = (await http.post("/users", json={"username": "alice"})).json()
        token = alice["access_token"]
        room = (await http.post("/rooms", json={"name": "Live room"}, headers=_auth(token))).json()
        seen: list[dict[str, Any]] = []
        listener = asyncio.create_task(
            _frames(url, f"/ws/{room['id']}/{alice['id']}?token={token}&v=2", seen)
        )
        await asyncio.sleep(0.3)

        # A: VP8 + Opus (a browser's defaults), ended by WHIP DELETE.
        stream = await _new_stream(http, room["id"], token, "Stream A")
        publisher = Publisher()
        posted = time.monotonic()
        answer = await publisher.publish(http, stream["whip_url"], stream["stream_key"])
        answered = time.monotonic()
        result["a_status"] = answer.status_code
        result["a_content_type"] = answer.headers.get("content-type")
        location = answer.headers["location"]
        result["a_location"] = location
        await asyncio.wait_for(publisher.connected.wait(), 10)
        connected = time.monotonic()

        rival = Publisher(audio=False)
        second = await rival.publish(http, stream["whip_url"], stream["stream_key"])
        await rival.close()
        result["second_publisher"] = {"status": second.status_code, **second.json()}

        pull = stream["pull_url"]
        await _until("the first segment", lambda: _playlist(http, pull))
        first_segment = time.monotonic()
        result["timings"] = {
            "post_to_answer": round(answered - posted, 3),
            "post_to_connected": round(connected - posted, 3),
            "post_to_first_playable_segment": round(first_segment - posted, 3),
        }
        cpu_before, wall_before = _cpu_seconds(pid), time.monotonic()
        listing = await _watch_listing(http, pull, 8.0)
        result["server_cpu_per_stream"] = round(
            (_cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before), 3
        )
        result["load_average"] = os.getloadavg()
        result["publisher_frames"] = publisher.video.count
        live_text = await _playlist(http, pull) or ""
        result["live_playlist"] = live_text
        result["a_state_live"] = (await _stream_state(http, stream["id"], token))["status"]
        stopped = await http.delete(location, headers=_auth(stream["stream_key"]))
        result["delete_status"] = stopped.status_code
        # Decoding is CPU work in this process: done once the stream is over, so the
        # publisher is never starved of its core while live. Segments stay served.
        base = pull.rsplit("/", 1)[0]
        # The first segment was listed just before watching began (polled every 50 ms).
        result["latency"] = await _latencies(http, base, listing, publisher.video.captured)
        newest = _uris(live_text)[-1]
        segment = await http.get(f"{base}/{newest}")
        result["segment"] = {
            "content_type": segment.headers["content-type"],
            **_decode(segment.content),
        }
        result["a_after"] = await _stream_state(http, stream["id"], token)
        ended = await http.get(pull)
        result["a_final_playlist"] = ended.text
        videos = (await http.get(f"/rooms/{room['id']}/videos", headers=_auth(token))).json()
        result["videos_after_a"] = videos
        ready = next(video for video in videos if video["id"] == stream["id"])
        master = await http.get(ready["playback_url"])
        result["archive_master"] = {"status": master.status_code, "text": master.text}
        thumbnail = await http.get(ready["thumbnail_url"])
        result["archive_thumbnail"] = [thumbnail.status_code, thumbnail.headers.get("content-type")]
        again = await Publisher(audio=False).publish(http, stream["whip_url"], stream["stream_key"])
        result["publish_after_end"] = again.status_code
        await publisher.close()

        # B: H.264 (what OBS sends), ended by the API's stop while live.
        stream_b = await _new_stream(http, room["id"], token, "Stream B")
        publisher_b = Publisher(codec="H264")
        answer_b = await publisher_b.publish(http, stream_b["whip_url"], stream_b["stream_key"])
        result["b_answer_has_h264"] = "H264/90000" in answer_b.text
        result["b_answer_has_vp8"] = "VP8/90000" in answer_b.text
        await _until("stream B's first segment", lambda: _playlist(http, stream_b["pull_url"]))
        stop = await http.post(f"/live-streams/{stream_b['id']}/stop", headers=_auth(token))
        result["b_stop"] = stop.json()
        await asyncio.wait_for(publisher_b.closed.wait(), 10)
        result["b_publisher_closed"] = publisher_b.pc.connectionState
        await publisher_b.close()

        # C: the publisher vanishes (no more media, no DELETE): the timeout ends it.
        stream_c = await _new_stream(http, room["id"], token, "Stream C")
        publisher_c = Publisher()
        await publisher_c.publish(http, stream_c["whip_url"], stream_c["stream_key"])
        await _until("stream C's first segment", lambda: _playlist(http, stream_c["pull_url"]))
        publisher_c.video.frozen = True
        assert publisher_c.audio is not None
        publisher_c.audio.frozen = True
        frozen = time.monotonic()

        async def c_ended() -> dict[str, Any] | None:
            state = await _stream_state(http, stream_c["id"], token)
            return state if state["status"] == "ended" and state["video_id"] else None

        result["c_after"] = await _until("stream C to time out", c_ended, timeout=40)
        result["c_seconds_to_end"] = round(time.monotonic() - frozen, 2)
        await publisher_c.close()

        await asyncio.sleep(0.5)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
        result["frames"] = seen
        result["ids"] = {"a": stream["id"], "b": stream_b["id"], "c": stream_c["id"]}
    return result


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="videochat-live-") as tmp:
        workdir = Path(tmp)
        try:
            server = ServerProcess(workdir, SERVER_SETTINGS)
            try:
                server.start()
                result = {"ok": True, **asyncio.run(scenario(server.url))}
            finally:
                server.stop()
        except Exception as error:
            log = workdir / "server.log"
            result = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()[-4000:],
                "server_log": log.read_text()[-4000:] if log.exists() else "",
            }
        log = workdir / "server.log"
        result["server_log_tail"] = log.read_text()[-3000:] if log.exists() else ""
    result["seconds"] = round(time.monotonic() - started, 2)
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
