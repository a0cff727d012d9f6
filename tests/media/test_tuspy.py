"""tuspy, the Python tus client, uploads in many chunks under a low per-IP request limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from tests.media import samples
from tests.support import LiveServer, auth, create_guest, create_room, eventually, run_server
from videochat.config import Settings
from videochat.db.models import Video, VideoStatus
from videochat.media import repository

# Few enough that the uploads' chunks alone would pass the per-IP limit many times.
PER_IP = 5
CHUNK = 4096


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tuspy-clip") / "clip.mp4"
    return samples.write_video(path, width=320, height=180, seconds=1.0)


@pytest.fixture(scope="session")
def clip(clip_path: Path) -> bytes:
    return clip_path.read_bytes()


@pytest.fixture
async def limited(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        media={"segment_seconds": 1.0},
        rate_limit={"enabled": True, "requests": PER_IP, "window_seconds": 60},
    )
    async with run_server(settings) as live:
        yield live


async def _status(server: LiveServer, video_id: str) -> VideoStatus:
    """Read from the database: polling the API would spend the per-IP limit."""
    async with server.context.sessionmaker() as session:
        video = await session.get(Video, video_id)
        assert video is not None
        return video.status


async def _wait_ready(server: LiveServer, video_id: str) -> None:
    async def ready() -> bool:
        status = await _status(server, video_id)
        assert status is not VideoStatus.FAILED
        return status is VideoStatus.READY

    await eventually(ready, timeout=60, interval=0.1, message="the video never became ready")


async def _owner(client: httpx.AsyncClient) -> tuple[str, str]:
    """(token, room id): two requests of the per-IP budget."""
    user = await create_guest(client, "uploader")
    room = await create_room(client, user["access_token"], "Videos")
    return user["access_token"], room["id"]


async def test_tuspy_creates_and_uploads_in_chunks_past_the_per_ip_limit(
    limited: LiveServer, clip_path: Path, clip: bytes
) -> None:
    assert len(clip) > CHUNK * PER_IP * 2
    async with httpx.AsyncClient(base_url=limited.url, timeout=15) as client:
        token, room_id = await _owner(client)
    tus = TusClient(f"{limited.url}/uploads/tus", headers=auth(token))
    uploader = tus.uploader(
        file_path=str(clip_path),
        metadata={"room_id": room_id, "title": "By tuspy"},
        chunk_size=CHUNK,
    )
    await asyncio.to_thread(uploader.upload)
    assert uploader.url is not None and uploader.url.startswith(f"{limited.url}/uploads/tus/")
    upload_id = uploader.url.rsplit("/", 1)[1]
    async with limited.context.sessionmaker() as session:
        video = await repository.get_by_upload_id(session, upload_id)
        assert video is not None
    await _wait_ready(limited, video.id)


async def test_tuspy_uploads_to_a_slots_tus_url(
    limited: LiveServer, clip_path: Path, clip: bytes
) -> None:
    size = len(clip)
    async with httpx.AsyncClient(base_url=limited.url, timeout=15) as client:
        token, room_id = await _owner(client)
        response = await client.post(
            f"/rooms/{room_id}/video-upload",
            json={"title": "Slot", "size_bytes": size},
            headers=auth(token),
        )
        assert response.status_code == 200, response.text
        slot = response.json()
    tus = TusClient(f"{limited.url}/uploads/tus", headers=auth(token))
    # Given the URL, tuspy asks HEAD where to resume (in its constructor, so off the
    # server's event loop too), then PATCHes with Upload-Offset only.
    uploader = await asyncio.to_thread(
        tus.uploader, file_path=str(clip_path), url=slot["tus_url"], chunk_size=CHUNK
    )
    await asyncio.to_thread(uploader.upload)
    await _wait_ready(limited, slot["id"])


async def test_tuspy_finishes_a_slot_made_without_a_size_given_its_tus_url_as_endpoint(
    limited: LiveServer, clip_path: Path, clip: bytes
) -> None:
    """The documented minimal flow: a slot with a title only; tuspy POSTs its creation
    (Upload-Length) to the slot's tus_url, which answers with that same URL."""
    async with httpx.AsyncClient(base_url=limited.url, timeout=15) as client:
        token, room_id = await _owner(client)
        response = await client.post(
            f"/rooms/{room_id}/video-upload", json={"title": "Minimal"}, headers=auth(token)
        )
        assert response.status_code == 200, response.text
        slot = response.json()
    tus = TusClient(slot["tus_url"], headers=auth(token))
    uploader = tus.uploader(file_path=str(clip_path), chunk_size=CHUNK)
    await asyncio.to_thread(uploader.upload)
    assert uploader.url == slot["tus_url"]
    await _wait_ready(limited, slot["id"])
    async with limited.context.sessionmaker() as session:
        video = await session.get(Video, slot["id"])
        assert video is not None and video.title == "Minimal" and video.size_bytes == len(clip)


async def test_upload_requests_have_their_own_per_user_limit(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        rate_limit={"enabled": True, "requests": 10, "upload_requests": 3},
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        token, room_id = await _owner(client)
        slot = (
            await client.post(
                f"/rooms/{room_id}/video-upload", json={"title": "x"}, headers=auth(token)
            )
        ).json()
        head = {**auth(token), "Tus-Resumable": "1.0.0"}
        for _ in range(3):
            assert (await client.head(slot["tus_url"], headers=head)).status_code == 200
        refused = await client.head(slot["tus_url"], headers=head)
        assert refused.status_code == 429
        assert refused.headers["tus-resumable"] == "1.0.0"
        assert int(refused.headers["retry-after"]) >= 1
        put = await client.put(slot["upload_url"], content=b"x", headers=auth(token))
        assert put.status_code == 429 and "upload requests" in put.json()["detail"]
        # The upload requests spent none of the address's budget: 3 of its 10 used so
        # far, 4 more (and 10 more upload requests) below.
        assert (await client.get(f"/rooms/{room_id}", headers=auth(token))).status_code == 200
        other = (await create_guest(client, "other"))["access_token"]
        room = await create_room(client, other)
        theirs = (
            await client.post(
                f"/rooms/{room['id']}/video-upload", json={"title": "y"}, headers=auth(other)
            )
        ).json()
        # Another user's upload requests are counted apart.
        other_head = {**auth(other), "Tus-Resumable": "1.0.0"}
        assert (await client.head(theirs["tus_url"], headers=other_head)).status_code == 200


async def test_a_slot_with_a_declared_size_takes_exactly_that_many_bytes(
    client: httpx.AsyncClient, clip: bytes
) -> None:
    token, room_id = await _owner(client)

    async def slot(**body: object) -> httpx.Response:
        return await client.post(
            f"/rooms/{room_id}/video-upload", json={"title": "x", **body}, headers=auth(token)
        )

    assert (await slot(size_bytes=0)).status_code == 422
    too_big = await slot(size_bytes=10**15)
    assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
    declared = (await slot(size_bytes=len(clip))).json()
    head = await client.head(declared["tus_url"], headers={**auth(token), "Tus-Resumable": "1.0.0"})
    assert head.headers["upload-length"] == str(len(clip))
    assert "upload-defer-length" not in head.headers
    short = await client.put(declared["upload_url"], content=clip[:-1], headers=auth(token))
    assert short.status_code == 400 and "declared" in short.json()["detail"]
    long = await client.put(declared["upload_url"], content=clip + b"x", headers=auth(token))
    assert long.status_code == 413 and "declared" in long.json()["detail"]
    exact = await client.put(declared["upload_url"], content=clip, headers=auth(token))
    assert exact.status_code == 200, exact.text
    # Without a size the slot's length is deferred: tus clients send it on a PATCH.
    deferred = (await slot()).json()
    head = await client.head(deferred["tus_url"], headers={**auth(token), "Tus-Resumable": "1.0.0"})
    assert head.headers["upload-defer-length"] == "1"
