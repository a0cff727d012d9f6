"""Scenario: two rooms' calls on a real Janus recorded at once into their libraries.

Runs inside a loopback-only network namespace (``test_recording_media.py`` starts it):
a Janus with token auth, a videochat server (SQLite, in-process job runner) whose
recording folder Janus writes to, and aiortc publishers joined with videochat grants:
three in the first room, two in the second. Both rooms are recorded for a few seconds
through the API, then stopped; each becomes a library video. Prints one
``RESULT_MARK`` + JSON line: the recorded windows, the videos, what they look like.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

import aioice.ice
import av
import httpx

from tests.sfu.conftest import sfu_settings
from tests.sfu.janus_publisher import JanusPublisher, bind_handle
from tests.sfu.janus_server import Janus
from tests.support import auth, create_guest, run_server
from tests.web.harness import RESULT_MARK
from videochat.config import Settings
from videochat.media.compose import grid

# The address of the namespace's veth (test_recording_media.VETH): Janus gathers no
# candidates on loopback, and aiortc must offer the same address.
MEDIA_ADDRESS = "10.77.0.1"
RECORD_SECONDS = 4.0
ROOMS = {"first": ("alice", "bob", "carol"), "second": ("dave", "erin")}
SHADES = (70, 130, 190)


async def _room(client: httpx.AsyncClient, names: tuple[str, ...]) -> dict[str, Any]:
    people = [await create_guest(client, name) for name in names]
    owner = people[0]
    room = (
        await client.post("/rooms", json={"name": names[0]}, headers=auth(owner["access_token"]))
    ).json()
    for person in people[1:]:
        headers = auth(person["access_token"])
        await client.post(f"/rooms/{room['id']}/join", json={}, headers=headers)
    return {"room": room, "people": people}


async def _publishers(
    client: httpx.AsyncClient, http: httpx.AsyncClient, call: dict[str, Any]
) -> list[JanusPublisher]:
    publishers = []
    for n, person in enumerate(call["people"]):
        grant = await client.post(
            f"/rooms/{call['room']['id']}/call/sfu-grant", headers=auth(person["access_token"])
        )
        assert grant.status_code == 200, grant.text
        register = partial(bind_handle, client, call["room"]["id"], person["access_token"])
        publishers.append(
            JanusPublisher(http, grant.json(), SHADES[n % len(SHADES)], register=register)
        )
    await asyncio.gather(*(publisher.publish() for publisher in publishers))
    return publishers


async def _ready(
    client: httpx.AsyncClient, video_id: str, token: str, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        video: dict[str, Any] = (
            await client.get(f"/videos/{video_id}", headers=auth(token))
        ).json()
        if video["status"] in ("ready", "failed"):
            return video
        assert time.monotonic() < deadline, video
        await asyncio.sleep(0.05)


def _inspect(folder: Path, tiles: int) -> dict[str, Any]:
    """The 720p rendition, read back with PyAV: duration, tile brightness, audio level."""
    playlist = next(path for path in folder.rglob("*.m3u8") if "720" in str(path))
    with av.open(str(playlist)) as container:
        duration = float(container.duration or 0) / 1e6
    with av.open(str(playlist)) as container:
        frames = list(container.decode(video=0))
        middle = frames[len(frames) // 2]
        luma = middle.reformat(format="gray")
        plane = luma.planes[0]
        pixels = bytes(plane)
        width, height = middle.width, middle.height
        scale_x, scale_y = width / 1280, height / 720
        levels = []
        for x, y, w, h in grid(tiles) + [(640, 360, 640, 360)] * (tiles == 3):
            cx, cy = int((x + w / 2) * scale_x), int((y + h / 2) * scale_y)
            # The publishers' stripes are 16 px (32 px once scaled into a tile): a band as
            # wide as half the tile spans whole stripe pairs, so its mean is the shade (a
            # 20 px square could sit inside one bright stripe: shade + 24 and more).
            half = int(w * scale_x / 4)
            column = [
                pixels[(cy + dy) * plane.line_size + cx + dx]
                for dy in range(-10, 10)
                for dx in range(-half, half)
            ]
            levels.append(statistics.fmean(column))
    with av.open(str(playlist)) as container:
        loudness = [
            max(abs(float(v)) for v in frame.to_ndarray().reshape(-1))
            for frame in container.decode(audio=0)
        ]
    return {
        "duration": duration,
        "frames": len(frames),
        "tile_levels": levels,  # mean luma at each tile's centre (and the empty cell)
        "audio_peak": max(loudness) if loudness else 0.0,
    }


async def main() -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="sfu-record-"))
    recordings = folder / "recordings"
    recordings.mkdir()
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [MEDIA_ADDRESS]
    janus = Janus(folder / "janus", ice_address=MEDIA_ADDRESS)
    janus.start()
    settings = Settings(
        environment="test",
        data_dir=folder / "data",
        database_url=f"sqlite+aiosqlite:///{folder / 'videochat.db'}",
        rate_limit={"enabled": False},
        log_level="WARNING",
        sfu=sfu_settings(janus, recording_dir=str(recordings)),
    )
    publishers: list[JanusPublisher] = []
    try:
        async with (
            run_server(settings) as live,
            httpx.AsyncClient(base_url=live.url, timeout=30) as client,
            httpx.AsyncClient(timeout=40) as http,
        ):
            calls = {name: await _room(client, names) for name, names in ROOMS.items()}
            for call in calls.values():
                publishers += await _publishers(client, http, call)
            await asyncio.sleep(1.0)  # media flowing before the recording starts
            for call in calls.values():
                path = f"/rooms/{call['room']['id']}/call/recording"
                owner = auth(call["people"][0]["access_token"])
                started = await client.post(path, headers=owner)
                assert started.status_code == 200, started.text
                call["started"] = time.monotonic()
            raw_during = sorted(p.name for p in recordings.rglob("*.mjr"))
            await asyncio.sleep(RECORD_SECONDS)
            for call in calls.values():
                path = f"/rooms/{call['room']['id']}/call/recording"
                stopped = await client.delete(path, headers=auth(call["people"][0]["access_token"]))
                assert stopped.status_code == 200, stopped.text
                call["stopped"] = time.monotonic()
                call["window"] = call["stopped"] - call["started"]
                call["video_id"] = stopped.json()["video_id"]
            # The publishers are people on other machines: their encoders leave this one.
            for publisher in publishers:
                await publisher.close()
            for call in calls.values():
                owner = call["people"][0]
                video = await _ready(client, call["video_id"], owner["access_token"])
                call["ready_after"] = time.monotonic() - call["stopped"]
                call["video"] = video
            results = {}
            for name, call in calls.items():
                video = call["video"]
                media = folder / "data" / "media" / call["video_id"]
                inspected = (
                    _inspect(media, len(call["people"])) if video["status"] == "ready" else {}
                )
                results[name] = {
                    "publishers": len(call["people"]),
                    "window": call["window"],
                    "ready_after": call["ready_after"],
                    "status": video["status"],
                    "error": video.get("error"),
                    "uploader_is_owner": video["uploader_id"] == call["people"][0]["id"],
                    "api_duration": video.get("duration_seconds"),
                    "size_bytes": video.get("size_bytes"),
                    **inspected,
                }
            return {
                "ok": True,
                "rooms": results,
                "raw_files_while_recording": len(raw_during),
                "raw_files_left": sorted(str(p) for p in recordings.rglob("*") if p.is_file()),
            }
    finally:
        for publisher in publishers:
            await publisher.close()
        janus.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    try:
        outcome = asyncio.run(main())
    except Exception:
        outcome = {"ok": False, "error": traceback.format_exc()}
    print(RESULT_MARK + json.dumps(outcome), flush=True)
