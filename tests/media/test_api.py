"""The video library over HTTP and WebSocket: upload, processing, playback, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.media import samples
from tests.media.api_helpers import (
    create_slot,
    first_uri,
    leftovers,
    new_slot,
    put,
    raw_get,
    wait_for,
)
from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    create_room,
    receive_until,
    run_server,
    ws_path,
)
from videochat.config import Settings
from videochat.db.models import Video
from videochat.kit.clock import utcnow
from videochat.media import tasks
from videochat.media.storage import MediaStorage


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One tiny real H.264/AAC MP4 (2 s, 320x180), shared by every test here."""
    path = tmp_path_factory.mktemp("api-clip") / "clip.mp4"
    return samples.write_video(path, width=320, height=180, seconds=2.0).read_bytes()


@pytest.fixture(scope="session")
def huge(huge_frame: Path) -> bytes:
    """The 16000x16000 single-frame video's bytes."""
    return huge_frame.read_bytes()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(media={"segment_seconds": 1.0, "job_retry_delay_seconds": 0.0})


async def _setup(client: httpx.AsyncClient, *, private: bool = False) -> tuple[Any, Any]:
    user = await create_guest(client, "uploader")
    room = await create_room(client, user["access_token"], "Videos", private=private)
    return user, room


async def _upload_ready(
    client: httpx.AsyncClient, clip: bytes, user: dict[str, Any], room: dict[str, Any]
) -> dict[str, Any]:
    slot = await new_slot(client, user["access_token"], room["id"])
    response = await put(client, slot["upload_url"], clip, user["access_token"])
    assert response.status_code == 200, response.text
    video = await wait_for(client, slot["id"], user["access_token"])
    assert video["status"] == "ready", video
    return video


async def test_upload_processes_to_ready_and_plays_over_http(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    user, room = await _setup(client)
    token = user["access_token"]
    async with connect_ws(server, ws_path(room["id"], user["id"], token)) as socket:
        await receive_until(socket, "presence")
        slot = await new_slot(client, token, room["id"])
        assert slot["status"] == "pending" and slot["title"] == "Clip"
        assert slot["upload_url"] == f"{server.url}/upload-proxy/{slot['upload_id']}"

        response = await put(client, slot["upload_url"], clip, token)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "uploaded"
        assert response.json()["upload_id"] == slot["upload_id"]

        seen: list[str] = []
        while not seen or seen[-1] not in {"ready", "failed"}:
            frame = await receive_until(socket, "video_status", timeout=30)
            assert frame["video_id"] == slot["id"] and frame["room_id"] == room["id"]
            seen.append(frame["status"])
        assert seen == ["pending", "uploaded", "processing", "ready"]
        assert frame["playback_url"].endswith("/master.m3u8")

    again = await put(client, slot["upload_url"], clip, token)
    assert again.status_code == 409 and again.json()["detail"]

    video = (await client.get(f"/videos/{slot['id']}")).json()
    assert video["status"] == "ready" and video["error"] is None
    assert (video["width"], video["height"]) == (320, 180)
    assert video["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    listed = (await client.get(f"/rooms/{room['id']}/videos")).json()
    assert [v["id"] for v in listed] == [slot["id"]]
    assert listed[0]["title"] == "Clip" and listed[0]["description"] == "a test clip"

    master = await client.get(video["playback_url"])
    assert master.status_code == 200
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert "max-age=10" in master.headers["cache-control"]
    rendition = first_uri(master.text)
    base = video["playback_url"].rsplit("/", 1)[0]
    playlist = await client.get(f"{base}/{rendition}")
    assert playlist.status_code == 200 and "#EXTINF" in playlist.text
    segment = first_uri(playlist.text)
    segment_url = f"{base}/{rendition.rsplit('/', 1)[0]}/{segment}"
    part = await client.get(segment_url, headers={"Range": "bytes=0-187"})
    assert part.status_code == 206
    assert part.headers["content-type"] == "video/mp2t"
    assert part.headers["content-range"].startswith("bytes 0-187/")
    assert part.content[0] == 0x47 and len(part.content) == 188  # MPEG-TS sync byte
    assert "immutable" in part.headers["cache-control"]
    thumb = await client.get(video["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content.startswith(b"\xff\xd8")

    # The source is deleted right after "ready" is recorded.
    async with asyncio.timeout(5):
        while list((server.settings.data_dir / "uploads").iterdir()):
            await asyncio.sleep(0.05)
    summary = (await client.get("/metrics")).json()["video"]
    assert summary["videos_uploaded"] >= 1 and summary["videos_processed"] >= 1


async def test_what_is_refused_at_once_gets_a_4xx_and_leaves_nothing(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes, tmp_path: Path
) -> None:
    user, room = await _setup(client)
    token = user["access_token"]
    other = await create_guest(client, "someone")
    slot = await new_slot(client, token, room["id"])
    url = slot["upload_url"]

    text = samples.write_text(tmp_path / "notes.txt").read_bytes()
    response = await put(client, url, text, token)
    assert response.status_code == 415
    assert "text" in response.json()["detail"]
    png = samples.write_png(tmp_path / "still.png").read_bytes()
    response = await put(client, url, png, token)
    assert response.status_code == 415
    assert "image" in response.json()["detail"]

    assert (await put(client, url, clip, None)).status_code == 401
    response = await put(client, url, clip, other["access_token"])
    assert response.status_code == 403 and response.json()["detail"]
    assert (await put(client, "/upload-proxy/nope", clip, token)).status_code == 404
    assert (await create_slot(client, None, room["id"])).status_code == 401
    assert (await create_slot(client, token, "no-such-room")).status_code == 404
    private = await create_room(client, other["access_token"], "Secret", private=True)
    assert (await create_slot(client, token, private["id"])).status_code == 404

    # Refusals keep the slot open: the same slot still takes the real video.
    assert leftovers(server.settings.data_dir, slot["id"]) == []
    video = (await client.get(f"/videos/{slot['id']}")).json()
    assert video["status"] == "pending"

    expired = await new_slot(client, token, room["id"])
    async with server.context.sessionmaker() as session:
        await session.execute(
            update(Video)
            .where(Video.id == expired["id"])
            .values(upload_expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    response = await put(client, expired["upload_url"], clip, token)
    assert response.status_code == 410 and "expired" in response.json()["detail"]

    response = await put(client, url, clip, token)
    assert response.status_code == 200


async def test_oversize_uploads_get_413_by_header_and_by_count(
    make_settings: Callable[..., Settings], clip: bytes
) -> None:
    settings = make_settings(media={"max_upload_bytes": 4096})
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
    ):
        user, room = await _setup(client)
        token = user["access_token"]
        slot = await new_slot(client, token, room["id"])
        response = await put(client, slot["upload_url"], clip[:8192], token)
        assert response.status_code == 413 and "4096" in response.json()["detail"]

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, 8192, 1024):  # no Content-Length: counted as it arrives
                yield clip[start : start + 1024]

        response = await put(client, slot["upload_url"], chunked(), token)
        assert response.status_code == 413
        assert leftovers(settings.data_dir, slot["id"]) == []
        assert (await client.get(f"/videos/{slot['id']}")).json()["status"] == "pending"


async def test_broken_files_end_failed_with_a_reason_and_leave_nothing(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes, tmp_path: Path, huge: bytes
) -> None:
    user, room = await _setup(client)
    token = user["access_token"]
    audio = samples.write_audio_only(tmp_path / "song.m4a", seconds=1.0).read_bytes()
    cases = {"truncated": clip[: len(clip) // 2], "audio": audio, "huge": huge}
    expected = {
        "truncated": "incomplete",
        "audio": "no video track",
        "huge": "picture is too large (16000x16000)",
    }
    for name, data in cases.items():
        slot = await new_slot(client, token, room["id"])
        assert (await put(client, slot["upload_url"], data, token)).status_code == 200
        video = await wait_for(client, slot["id"], token)
        assert video["status"] == "failed", name
        assert expected[name] in video["error"], video["error"]
        assert video["playback_url"] is None
        assert leftovers(server.settings.data_dir, slot["id"]) == []


async def test_the_configured_limits_are_the_ones_a_job_applies(
    make_settings: Callable[..., Settings], clip: bytes
) -> None:
    settings = make_settings(media={"max_video_seconds": 1.5})
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
    ):
        user, room = await _setup(client)
        token = user["access_token"]
        slot = await new_slot(client, token, room["id"])
        assert (await put(client, slot["upload_url"], clip, token)).status_code == 200
        video = await wait_for(client, slot["id"], token)
        assert video["status"] == "failed"
        assert video["error"] == ("the video is too long (2.0 s); the longest accepted is 1.5 s"), (
            video["error"]
        )
        assert leftovers(settings.data_dir, slot["id"]) == []


async def test_private_videos_only_for_members_and_paths_stay_inside(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    user, room = await _setup(client, private=True)
    token = user["access_token"]
    outsider = await create_guest(client, "outsider")
    video = await _upload_ready(client, clip, user, room)
    base = f"/media/videos/{video['id']}"

    assert (await client.get(f"/videos/{video['id']}")).status_code == 404
    response = await client.get(f"/videos/{video['id']}", headers=auth(outsider["access_token"]))
    assert response.status_code == 404
    assert (await client.get(f"{base}/master.m3u8")).status_code == 404
    response = await client.get(f"{base}/master.m3u8", headers=auth(outsider["access_token"]))
    assert response.status_code == 404
    response = await client.get(f"{base}/master.m3u8?token={outsider['access_token']}")
    assert response.status_code == 404
    assert (await client.get(f"{base}/master.m3u8?token=garbage")).status_code == 404

    assert (await client.get(f"{base}/master.m3u8", headers=auth(token))).status_code == 200
    # The playback URL carries a video-scoped token, handed on to every URI it lists.
    master = await client.get(video["playback_url"])
    assert master.status_code == 200 and "private" in master.headers["cache-control"]
    rendition = first_uri(master.text)
    assert "?token=" in rendition
    playlist = await client.get(f"{base}/{rendition}")
    segment = first_uri(playlist.text)
    assert "?token=" in segment
    folder = rendition.split("?")[0].rsplit("/", 1)[0]
    assert (await client.get(f"{base}/{folder}/{segment}")).status_code == 200
    assert (await client.get(video["thumbnail_url"])).status_code == 200

    auth_query = f"?token={token}"
    for target in (
        f"{base}/../../videochat.db",
        f"{base}/..%2f..%2fvideochat.db",
        f"{base}/%2e%2e/%2e%2e/videochat.db",
        f"{base}/%2e%2e%2f%2e%2e%2fvideochat.db",
        f"{base}/..%5c..%5cvideochat.db",
        f"{base}//etc/passwd",
        f"{base}/.master.m3u8.tmp",
        "/media/videos/..%2f..%2fvideochat.db/master.m3u8",
    ):
        status = await raw_get(server, target + auth_query)
        assert status in {400, 404}, (target, status)


async def test_a_crashing_job_is_retried_then_fails_with_a_generic_reason(
    client: httpx.AsyncClient, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tasks.transcode_to_hls
    calls: list[str] = []

    def flaky(source: Path, out_dir: Path, **kw: Any) -> Any:
        calls.append(source.name)
        if len(calls) == 1:
            raise RuntimeError("simulated crash")
        return real(source, out_dir, **kw)

    monkeypatch.setattr(tasks, "transcode_to_hls", flaky)
    user, room = await _setup(client)
    await _upload_ready(client, clip, user, room)
    assert len(calls) == 2

    def always(source: Path, out_dir: Path, **kw: Any) -> Any:
        calls.append(source.name)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(tasks, "transcode_to_hls", always)
    calls.clear()
    slot = await new_slot(client, user["access_token"], room["id"])
    await put(client, slot["upload_url"], clip, user["access_token"])
    video = await wait_for(client, slot["id"], user["access_token"])
    assert video["status"] == "failed" and video["error"] == "processing failed"
    assert len(calls) == 3  # job_max_attempts


async def test_jobs_left_behind_are_finished_after_a_restart(
    settings: Settings, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def lost(self: object, video_id: str) -> None:
        """The process dies between the commit and the job starting."""

    with monkeypatch.context() as patch:
        patch.setattr(tasks.InProcessJobRunner, "enqueue", lost)
        async with (
            run_server(settings) as live,
            httpx.AsyncClient(base_url=live.url, timeout=15) as client,
        ):
            user, room = await _setup(client)
            slot = await new_slot(client, user["access_token"], room["id"])
            await put(client, slot["upload_url"], clip, user["access_token"])
            # No wait needed: the upload is committed before the answer, and nothing runs it.
            assert (await client.get(f"/videos/{slot['id']}")).json()["status"] == "uploaded"

    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
    ):
        video = await wait_for(client, slot["id"], user["access_token"])
        assert video["status"] == "ready"


def test_public_file_never_leaves_the_video_folder(tmp_path: Path) -> None:
    storage = MediaStorage(tmp_path)
    folder = storage.output_dir("v1")
    (folder / "360p").mkdir(parents=True)
    (folder / "360p" / "index.m3u8").write_text("#EXTM3U\n")
    (folder / "master.m3u8").write_text("#EXTM3U\n")
    (folder / ".master.m3u8.tmp").write_text("#EXTM3U\n")
    (tmp_path / "secret.ts").write_bytes(b"x")
    (folder / "escape.ts").symlink_to(tmp_path / "secret.ts")
    assert storage.public_file("v1", "master.m3u8") == folder / "master.m3u8"
    assert storage.public_file("v1", "360p/index.m3u8") == folder / "360p" / "index.m3u8"
    for bad in (
        "../../secret.ts",
        "360p/../../../secret.ts",
        str(tmp_path / "secret.ts"),
        "escape.ts",
        ".master.m3u8.tmp",
        "360p",
        "missing.ts",
        "",
    ):
        assert storage.public_file("v1", bad) is None, bad
    assert storage.public_file("..", "media/v1/master.m3u8") is None
