"""Starting and stopping a call's recording: who may, what Janus and the room are told.

Media through Janus (publishers, the composed video) is in ``test_recording_media``;
here the VideoRoom has nobody publishing, so a stopped recording's video fails
("nothing was recorded") and its raw folder is gone.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from tests.sfu.conftest import sfu_settings
from tests.sfu.janus_server import Janus
from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    receive_until,
    room_with_people,
    run_server,
    ws_path,
)
from videochat.config import Settings
from videochat.db.models import CallRecording, Room, Video, VideoStatus
from videochat.db.unit_of_work import unit_of_work
from videochat.kit.clock import utcnow
from videochat.media.compose import NOTHING_RECORDED
from videochat.sfu import cleanup
from videochat.sfu.janus import JanusAdmin
from videochat.sfu.videoroom import janus_room_id

pytestmark = pytest.mark.slow


@pytest.fixture
async def recording_server(
    janus: Janus, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[LiveServer]:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    settings = make_settings(sfu=sfu_settings(janus, recording_dir=str(recordings)))
    async with run_server(settings) as live:
        yield live


_room_with = partial(room_with_people, name="Recorded")


async def _moderator_starts_recording(
    client: httpx.AsyncClient,
    room: dict[str, Any],
    *,
    owner: dict[str, Any],
    moderator: dict[str, Any],
) -> None:
    """The owner makes ``moderator`` one, who then starts recording (200)."""
    promoted = await client.post(
        f"/rooms/{room['id']}/members/{moderator['id']}/role",
        json={"role": "moderator"},
        headers=auth(owner["access_token"]),
    )
    assert promoted.status_code == 200, promoted.text
    started = await client.post(_recording(room), headers=auth(moderator["access_token"]))
    assert started.status_code == 200, started.text


def _recording(room: dict[str, Any]) -> str:
    return f"/rooms/{room['id']}/call/recording"


async def _videoroom(janus: Janus, room_id: str, live: LiveServer) -> dict[str, Any]:
    """The VideoRoom's settings as Janus lists them (its record flag and folder)."""
    async with httpx.AsyncClient(timeout=10) as http:
        admin = JanusAdmin(http, janus.admin_url, janus.admin_secret)
        # Private rooms are listed to the admin key's holder only.
        listing = {"request": "list", "admin_key": janus.room_admin_key}
        rooms = (await admin.videoroom(listing))["list"]
    wanted = janus_room_id(room_id)
    return next(item for item in rooms if item["room"] == wanted)


async def test_an_owner_starts_and_stops_recording_and_the_room_hears_it(
    recording_server: LiveServer, janus: Janus, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=recording_server.url, timeout=15) as client:
        room, (alice, bob) = await _room_with(client, "alice", "bob")
        path = ws_path(room["id"], bob["id"], bob["access_token"])
        async with connect_ws(recording_server, path) as socket:
            welcome = await receive_until(socket, "welcome")
            assert welcome["recording"] is None
            started = await client.post(_recording(room), headers=auth(alice["access_token"]))
            assert started.status_code == 200, started.text
            body = started.json()
            assert body["active"] is True and body["started_by"] == alice["id"]
            frame = await receive_until(socket, "recording")
            assert frame["active"] is True and frame["by"] == alice["id"]
            assert frame["started_at"]
            # Janus records the room, into the recording's own folder.
            listed = await _videoroom(janus, room["id"], recording_server)
            assert listed["record"] is True, listed
            assert listed["rec_dir"].startswith(str(tmp_path / "recordings")), listed
            assert listed["lock_record"] is True
            # Someone connecting now learns it from the welcome.
            async with connect_ws(recording_server, path) as later:
                again = await receive_until(later, "welcome")
                assert again["recording"]["active"] is True
                assert again["recording"]["by"] == alice["id"]
            twice = await client.post(_recording(room), headers=auth(alice["access_token"]))
            assert twice.status_code == 409 and "already" in twice.json()["detail"]

            stopped = await client.delete(_recording(room), headers=auth(alice["access_token"]))
            assert stopped.status_code == 200, stopped.text
            video_id = stopped.json()["video_id"]
            assert video_id and stopped.json()["active"] is False
            frame = await receive_until(socket, "recording")
            assert frame == {**frame, "active": False, "by": alice["id"], "video_id": video_id}
            assert (await _videoroom(janus, room["id"], recording_server))["record"] is False
            again_stopped = await client.delete(
                _recording(room), headers=auth(alice["access_token"])
            )
            assert again_stopped.status_code == 409
            assert "not being recorded" in again_stopped.json()["detail"]

            # Nobody published: the video fails with a reason, and its folder is gone.
            deadline = time.monotonic() + 20
            while True:
                video = (
                    await client.get(f"/videos/{video_id}", headers=auth(bob["access_token"]))
                ).json()
                if video["status"] in ("ready", "failed"):
                    break
                assert time.monotonic() < deadline, video
                await asyncio.sleep(0.1)
            assert video["status"] == "failed" and video["error"] == NOTHING_RECORDED
            assert video["uploader_id"] == alice["id"]
            assert list((tmp_path / "recordings").iterdir()) == []


async def test_only_owners_and_moderators_may_record(recording_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=recording_server.url, timeout=15) as client:
        room, (alice, bob) = await _room_with(client, "alice", "bob")
        stranger = await create_guest(client, "stranger")
        for person in (bob, stranger):
            refused = await client.post(_recording(room), headers=auth(person["access_token"]))
            assert refused.status_code == 403, refused.text
            assert "moderators" in refused.json()["detail"]
        assert (await client.post(_recording(room))).status_code == 401
        await _moderator_starts_recording(client, room, owner=alice, moderator=bob)
        # A plain member cannot stop it either.
        carol = await create_guest(client, "carol")
        await client.post(f"/rooms/{room['id']}/join", json={}, headers=auth(carol["access_token"]))
        refused = await client.delete(_recording(room), headers=auth(carol["access_token"]))
        assert refused.status_code == 403
        stopped = await client.delete(_recording(room), headers=auth(alice["access_token"]))
        assert stopped.status_code == 200, stopped.text
        # A private room is 404 to outsiders (its existence does not leak); a banned
        # moderator is no longer one.
        hidden, (dave, erin) = await _room_with(client, "dave", "erin", is_private=True)
        refused = await client.post(_recording(hidden), headers=auth(stranger["access_token"]))
        assert refused.status_code == 404, refused.text
        headers = auth(dave["access_token"])
        path = f"/rooms/{hidden['id']}/members/{erin['id']}"
        promoted = await client.post(f"{path}/role", json={"role": "moderator"}, headers=headers)
        assert promoted.status_code == 200, promoted.text
        assert (await client.post(f"{path}/ban", headers=headers)).status_code == 200
        refused = await client.post(_recording(hidden), headers=auth(erin["access_token"]))
        assert refused.status_code in (403, 404), refused.text


async def test_without_an_sfu_or_a_recording_dir_there_is_no_recording(
    client: httpx.AsyncClient, janus: Janus, make_settings: Callable[..., Settings]
) -> None:
    room, (alice,) = await _room_with(client, "alice")
    response = await client.post(_recording(room), headers=auth(alice["access_token"]))
    assert response.status_code == 404
    assert "SFU" in response.json()["detail"]
    settings = make_settings(sfu=sfu_settings(janus))  # no recording_dir
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as other:
        room, (alice,) = await _room_with(other, "alice")
        response = await other.post(_recording(room), headers=auth(alice["access_token"]))
        assert response.status_code == 409
        assert "RECORDING_DIR" in response.json()["detail"]


async def test_a_recording_is_refused_while_the_starters_storage_quota_is_used_up(
    janus: Janus, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    settings = make_settings(
        sfu=sfu_settings(janus, recording_dir=str(recordings)),
        media={"max_stored_bytes_per_user": 5_000},
    )
    async with (
        run_server(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=15) as client,
    ):
        room, (alice, bob) = await _room_with(client, "alice", "bob")
        # Alice's library already holds her quota's worth; Bob's holds nothing.
        async with unit_of_work(live.context.sessionmaker) as session:
            session.add(
                Video(
                    room_id=room["id"],
                    uploader_id=alice["id"],
                    title="big",
                    status=VideoStatus.READY,
                    size_bytes=5_000,
                    upload_id="used-up",
                    upload_expires_at=utcnow(),
                )
            )
        refused = await client.post(_recording(room), headers=auth(alice["access_token"]))
        assert refused.status_code == 409, refused.text
        assert "quota" in refused.json()["detail"]
        await _moderator_starts_recording(client, room, owner=alice, moderator=bob)


async def _recording_folder(live: LiveServer, room_id: str) -> Path:
    settings = live.context.settings.sfu
    assert settings.recording_dir is not None
    async with live.context.sessionmaker() as session:
        folder = await session.scalar(
            select(CallRecording.folder).where(CallRecording.room_id == room_id)
        )
    assert folder is not None
    return settings.recording_dir / folder


async def test_deleting_a_room_while_it_records_ends_the_call_and_removes_the_raw_files(
    recording_server: LiveServer, janus: Janus
) -> None:
    context = recording_server.context
    assert context.sfu is not None
    async with httpx.AsyncClient(base_url=recording_server.url, timeout=15) as client:
        room, (alice, bob) = await _room_with(client, "alice", "bob")
        grant = (
            await client.post(
                f"/rooms/{room['id']}/call/sfu-grant", headers=auth(bob["access_token"])
            )
        ).json()
        started = await client.post(_recording(room), headers=auth(alice["access_token"]))
        assert started.status_code == 200, started.text
        # What Janus writes for a publisher (none publishes here: no media in this test).
        folder = await _recording_folder(recording_server, room["id"])
        folder.mkdir(exist_ok=True)
        (folder / "videoroom-1-user-2-3-video-0.mjr").write_bytes(b"MJR00002")
        assert (await _videoroom(janus, room["id"], recording_server))["record"] is True
        async with unit_of_work(context.sessionmaker) as session:
            await cleanup.room_deleted(session, context, room["id"])
            await session.delete(await session.get(Room, room["id"]))
        assert not folder.exists()
        async with httpx.AsyncClient(timeout=10) as http:
            admin = JanusAdmin(http, janus.admin_url, janus.admin_secret)
            exists = {"request": "exists", "room": janus_room_id(room["id"])}
            assert (await admin.videoroom(exists))["exists"] is False
            assert grant["token"] not in await admin.tokens()


async def test_the_sweep_removes_raw_folders_whose_room_was_deleted_behind_its_back(
    recording_server: LiveServer,
) -> None:
    context = recording_server.context
    assert context.sfu is not None
    async with httpx.AsyncClient(base_url=recording_server.url, timeout=15) as client:
        gone, (alice,) = await _room_with(client, "alice")
        kept, (bob,) = await _room_with(client, "bob")
        for room, person in ((gone, alice), (kept, bob)):
            started = await client.post(_recording(room), headers=auth(person["access_token"]))
            assert started.status_code == 200, started.text
        folders = {}
        for room in (gone, kept):
            folders[room["id"]] = await _recording_folder(recording_server, room["id"])
            folders[room["id"]].mkdir(exist_ok=True)
            long_ago = time.time() - 3600
            os.utime(folders[room["id"]], (long_ago, long_ago))
        async with unit_of_work(context.sessionmaker) as session:  # no cleanup.room_deleted
            await session.execute(delete(Room).where(Room.id == gone["id"]))
        swept = await context.sfu.sweep()
        assert swept["orphan_folders"] == 1
        assert not folders[gone["id"]].exists()
        assert folders[kept["id"]].exists()  # its recording still runs
