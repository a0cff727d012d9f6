"""Renaming and deleting videos: who may, what the room hears, what is left on disk."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.media import samples
from tests.media.api_helpers import leftovers, new_slot, put, wait_for
from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    eventually,
    logged_errors,
    receive_until,
    ws_path,
)
from videochat.config import Settings
from videochat.media import tasks


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("manage-clip") / "clip.mp4"
    return samples.write_video(path, width=320, height=180, seconds=1.0).read_bytes()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(media={"segment_seconds": 1.0, "job_retry_delay_seconds": 0.0})


async def _room(
    client: httpx.AsyncClient, *names: str, private: bool = False
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A room owned by the first name; the others join (moderator "mod" promoted)."""
    people = {name: await create_guest(client, name) for name in names}
    owner = people[names[0]]
    created = await client.post(
        "/rooms",
        json={"name": "Library", "is_private": private},
        headers=auth(owner["access_token"]),
    )
    assert created.status_code == 200, created.text
    room: dict[str, Any] = created.json()
    for name in names[1:]:
        body = {"invite_code": room["invite_code"]} if private else {}
        joined = await client.post(
            f"/rooms/{room['id']}/join", json=body, headers=auth(people[name]["access_token"])
        )
        assert joined.status_code == 200, joined.text
    if "mod" in people:
        promoted = await client.post(
            f"/rooms/{room['id']}/members/{people['mod']['id']}/role",
            json={"role": "moderator"},
            headers=auth(owner["access_token"]),
        )
        assert promoted.status_code == 200, promoted.text
    return room, people


async def _ready(
    client: httpx.AsyncClient, clip: bytes, person: dict[str, Any], room: dict[str, Any]
) -> dict[str, Any]:
    slot = await new_slot(client, person["access_token"], room["id"])
    response = await put(client, slot["upload_url"], clip, person["access_token"])
    assert response.status_code == 200, response.text
    video = await wait_for(client, slot["id"], person["access_token"])
    assert video["status"] == "ready", video
    return video


def _patch(
    client: httpx.AsyncClient, video_id: str, person: dict[str, Any] | None, body: Any
) -> Any:
    headers = auth(person["access_token"]) if person else {}
    return client.patch(f"/videos/{video_id}", json=body, headers=headers)


def _delete(client: httpx.AsyncClient, video_id: str, person: dict[str, Any] | None) -> Any:
    headers = auth(person["access_token"]) if person else {}
    return client.delete(f"/videos/{video_id}", headers=headers)


async def test_the_uploader_renames_and_the_room_hears_it(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    room, people = await _room(client, "owner", "uploader")
    uploader = people["uploader"]
    video = await _ready(client, clip, uploader, room)
    path = ws_path(room["id"], people["owner"]["id"], people["owner"]["access_token"])
    async with connect_ws(server, path) as socket:
        await receive_until(socket, "presence")
        renamed = await _patch(client, video["id"], uploader, {"title": "  Team demo  "})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["title"] == "Team demo"
        assert renamed.json()["playback_url"] == video["playback_url"]
        frame = await receive_until(socket, "video_status")
        assert frame["video_id"] == video["id"] and frame["title"] == "Team demo"
        assert frame["status"] == "ready"
    listed = (await client.get(f"/rooms/{room['id']}/videos")).json()
    assert [v["title"] for v in listed] == ["Team demo"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"title": 5}, "title"),
        ({}, "title"),
        ({"title": "Fine", "uploader_id": "someone"}, "uploader_id"),
    ],
)
async def test_a_bad_title_is_a_422_that_says_which_field(
    client: httpx.AsyncClient, clip: bytes, body: Any, field: str
) -> None:
    room, people = await _room(client, "owner")
    slot = await new_slot(client, people["owner"]["access_token"], room["id"])
    response = await _patch(client, slot["id"], people["owner"], body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and any(field in error["loc"] for error in detail), detail
    assert (await client.get(f"/videos/{slot['id']}")).json()["title"] == "Clip"


async def test_who_may_rename_and_delete(client: httpx.AsyncClient, server: LiveServer) -> None:
    room, people = await _room(client, "owner", "mod", "uploader", "other", "muted")
    token = people["uploader"]["access_token"]
    # Slots are enough here: the rules do not depend on the status.
    videos = [(await new_slot(client, token, room["id"]))["id"] for _ in range(3)]
    mod_video = (await new_slot(client, people["mod"]["access_token"], room["id"]))["id"]
    owner_video = (await new_slot(client, people["owner"]["access_token"], room["id"]))["id"]
    muted_video = (await new_slot(client, people["muted"]["access_token"], room["id"]))["id"]
    muted = await client.post(
        f"/rooms/{room['id']}/members/{people['muted']['id']}/mute",
        headers=auth(people["owner"]["access_token"]),
    )
    assert muted.status_code == 200, muted.text
    outsider = await create_guest(client, "outsider")
    title = {"title": "New"}

    # Neither another member, nor someone outside, nor a moderator on the owner's.
    for person, video in [
        (people["other"], videos[0]),
        (outsider, videos[0]),
        (people["mod"], owner_video),
        (people["muted"], videos[0]),
    ]:
        for response in (
            await _patch(client, video, person, title),
            await _delete(client, video, person),
        ):
            assert response.status_code == 403, response.text
            assert response.json()["detail"]
    assert (await _patch(client, videos[0], None, title)).status_code == 401
    assert (await _delete(client, videos[0], None)).status_code == 401
    assert (await _patch(client, "no-such-video", people["owner"], title)).status_code == 404
    assert (await _delete(client, "no-such-video", people["owner"])).status_code == 404

    # The muted may delete their own video (it removes), not rename it (it speaks).
    assert (await _patch(client, muted_video, people["muted"], title)).status_code == 403
    assert (await _delete(client, muted_video, people["muted"])).status_code == 204

    # The uploader, a moderator (above a member), the owner (anyone's).
    assert (await _patch(client, videos[0], people["uploader"], title)).status_code == 200
    assert (await _patch(client, videos[1], people["mod"], title)).status_code == 200
    assert (await _patch(client, mod_video, people["owner"], title)).status_code == 200
    assert (await _delete(client, videos[0], people["uploader"])).status_code == 204
    assert (await _delete(client, videos[1], people["mod"])).status_code == 204
    assert (await _delete(client, mod_video, people["owner"])).status_code == 204
    assert (await _delete(client, videos[0], people["uploader"])).status_code == 404
    left = {v["id"] for v in (await client.get(f"/rooms/{room['id']}/videos")).json()}
    assert left == {videos[2], owner_video}


async def test_a_private_rooms_videos_are_not_found_by_outsiders(
    client: httpx.AsyncClient,
) -> None:
    room, people = await _room(client, "owner", "member", private=True)
    video = (await new_slot(client, people["member"]["access_token"], room["id"]))["id"]
    outsider = await create_guest(client, "outsider")
    assert (await _patch(client, video, outsider, {"title": "x"})).status_code == 404
    assert (await _delete(client, video, outsider)).status_code == 404
    assert (await _delete(client, video, people["owner"])).status_code == 204


async def test_delete_removes_the_files_and_tells_the_room(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    room, people = await _room(client, "owner", "uploader")
    uploader = people["uploader"]
    video = await _ready(client, clip, uploader, room)
    data_dir = server.settings.data_dir
    assert leftovers(data_dir, video["id"])  # the HLS folder
    path = ws_path(room["id"], people["owner"]["id"], people["owner"]["access_token"])
    async with connect_ws(server, path) as socket:
        await receive_until(socket, "presence")
        response = await _delete(client, video["id"], uploader)
        assert response.status_code == 204, response.text
        frame = await receive_until(socket, "video_deleted")
    assert frame == {
        "type": "video_deleted",
        "video_id": video["id"],
        "room_id": room["id"],
        "by": uploader["id"],
    }
    await eventually(lambda: not leftovers(data_dir, video["id"]), message="files left")
    assert (await client.get(f"/videos/{video['id']}")).status_code == 404
    assert (await client.get(video["playback_url"])).status_code == 404
    assert (await client.get(f"/rooms/{room['id']}/videos")).json() == []


async def test_a_deleted_slot_takes_no_bytes(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    room, people = await _room(client, "owner")
    token = people["owner"]["access_token"]
    slot = await new_slot(client, token, room["id"])
    assert (await _delete(client, slot["id"], people["owner"])).status_code == 204
    assert (await put(client, slot["upload_url"], clip, token)).status_code == 404
    assert not leftovers(server.settings.data_dir, slot["id"])


async def test_a_video_deleted_while_transcoding_is_not_resurrected(
    client: httpx.AsyncClient,
    server: LiveServer,
    clip: bytes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The transcode finishes after the delete: no "ready", and its output is removed.

    The delete took the job's work folder, so publishing it failed: that is the user's
    delete, not a processing error (it was logged as one, with a traceback, and retried).
    """
    real = tasks.transcode_to_hls
    transcoded, release = threading.Event(), threading.Event()

    def held(source: Path, out_dir: Path, **kw: Any) -> Any:
        result = real(source, out_dir, **kw)
        transcoded.set()  # the work folder is written; publishing it comes after
        release.wait(timeout=30)
        return result

    monkeypatch.setattr(tasks, "transcode_to_hls", held)
    room, people = await _room(client, "owner")
    owner = people["owner"]
    token = owner["access_token"]
    path = ws_path(room["id"], owner["id"], token)
    async with connect_ws(server, path) as socket:
        await receive_until(socket, "presence")
        slot = await new_slot(client, token, room["id"])
        assert (await put(client, slot["upload_url"], clip, token)).status_code == 200
        await eventually(lambda: transcoded.is_set(), timeout=30)
        assert (await client.get(f"/videos/{slot['id']}")).json()["status"] == "processing"
        assert (await _delete(client, slot["id"], owner)).status_code == 204
        release.set()
        jobs = server.context.video_jobs
        await eventually(lambda: jobs.snapshot() == (0, 0), timeout=30)
        data_dir = server.settings.data_dir
        await eventually(lambda: not leftovers(data_dir, slot["id"]), message="files left")
        # Every frame the room got about it: none says "ready".
        frames: list[dict[str, Any]] = []
        while True:
            try:
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), 0.3)))
            except TimeoutError:
                break
    statuses = [f["status"] for f in frames if f.get("type") == "video_status"]
    assert "ready" not in statuses, frames
    assert any(f.get("type") == "video_deleted" for f in frames), frames
    assert (await client.get(f"/videos/{slot['id']}")).status_code == 404
    assert logged_errors(caplog) == []
    assert (await client.get(f"/rooms/{room['id']}/videos")).json() == []


async def test_a_ban_during_the_transcode_leaves_no_files_behind(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Withdrawn by a ban mid-transcode: the job ends without "ready" and removes its output.

    (A ban fails the video but leaves a running transcode's files to the job, which
    used to publish them and leave them behind.)
    """
    real = tasks.transcode_to_hls
    transcoded, release = threading.Event(), threading.Event()

    def held(source: Path, out_dir: Path, **kw: Any) -> Any:
        result = real(source, out_dir, **kw)
        transcoded.set()
        release.wait(timeout=30)
        return result

    monkeypatch.setattr(tasks, "transcode_to_hls", held)
    room, people = await _room(client, "owner", "uploader")
    token = people["uploader"]["access_token"]
    slot = await new_slot(client, token, room["id"])
    assert (await put(client, slot["upload_url"], clip, token)).status_code == 200
    await eventually(lambda: transcoded.is_set(), timeout=30)
    banned = await client.post(
        f"/rooms/{room['id']}/members/{people['uploader']['id']}/ban",
        headers=auth(people["owner"]["access_token"]),
    )
    assert banned.status_code == 200, banned.text
    release.set()
    await eventually(lambda: server.context.video_jobs.snapshot() == (0, 0), timeout=30)
    video = (await client.get(f"/videos/{slot['id']}")).json()
    assert video["status"] == "failed", video
    assert video["error"] == "The uploader was banned from this room"
    data_dir = server.settings.data_dir
    await eventually(lambda: not leftovers(data_dir, slot["id"]), message="files left")
