"""Every URL a video answer carries is absolute: scripts and other origins use it as given."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from tests.media import samples
from tests.media.api_helpers import new_slot, wait_for
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

PUBLIC = "https://videos.example.org"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("url-clip") / "clip.mp4"
    return samples.write_video(path, width=320, height=180, seconds=1.0).read_bytes()


def _path(url: str) -> str:
    """The path and query of an absolute URL (to reach it on the test server)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _urls_of_a_ready_video(
    client: httpx.AsyncClient, clip: bytes, *, private: bool
) -> tuple[dict[str, str], list[str]]:
    """A slot, a tus creation and a ready video; (slot, every URL the answers carried)."""
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos", private=private)
    slot = await new_slot(client, token, room["id"])
    meta = f"room_id {base64.b64encode(room['id'].encode()).decode()},title dHVz"
    created = await client.post(
        "/uploads/tus",
        headers={**auth(token), **TUS, "Upload-Length": "10", "Upload-Metadata": meta},
    )
    assert created.status_code == 201, created.text
    put = await client.put(_path(slot["upload_url"]), content=clip, headers=auth(token))
    assert put.status_code == 200, put.text
    ready = await wait_for(client, slot["id"], token)
    assert ready["status"] == "ready", ready
    listed = await client.get(f"/rooms/{room['id']}/videos", headers=auth(token))
    urls = [slot["upload_url"], slot["tus_url"], created.headers["location"]]
    ready_ones = [video for video in [ready, *listed.json()] if video["status"] == "ready"]
    assert len(ready_ones) == 2
    for video in ready_ones:
        urls += [video["playback_url"], video["thumbnail_url"]]
    return slot, urls


@pytest.mark.parametrize("private", [False, True])
async def test_with_a_public_url_every_video_url_starts_with_it(
    make_settings: Callable[..., Settings], clip: bytes, private: bool
) -> None:
    settings = make_settings(public_url=PUBLIC + "/", media={"segment_seconds": 1.0})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        slot, urls = await _urls_of_a_ready_video(client, clip, private=private)
        assert slot["upload_url"] == f"{PUBLIC}/upload-proxy/{slot['upload_id']}"
        assert slot["tus_url"] == f"{PUBLIC}/uploads/tus/{slot['upload_id']}"
        for url in urls:
            assert url.startswith(PUBLIC + "/") and "//" not in url.removeprefix("https://")
            if "/media/videos/" in url:
                # The same path is served here: the public URL only names the origin.
                assert (await client.get(_path(url))).status_code == 200, url


async def test_without_a_public_url_urls_name_the_server_as_the_client_reached_it(
    client: httpx.AsyncClient, server: LiveServer, clip: bytes
) -> None:
    _, urls = await _urls_of_a_ready_video(client, clip, private=True)
    for url in urls:
        assert url.startswith(server.url + "/"), url
    # uvicorn does not honour X-Forwarded-Host: a client cannot move the links elsewhere.
    user = await create_guest(client, "forger")
    room = await create_room(client, user["access_token"])
    forged = await client.post(
        f"/rooms/{room['id']}/video-upload",
        json={"title": "x"},
        headers={**auth(user["access_token"]), "X-Forwarded-Host": "evil.example"},
    )
    assert forged.json()["upload_url"].startswith(server.url + "/")


async def test_the_prototype_flow_uses_the_returned_urls_verbatim(
    server: LiveServer, clip: bytes
) -> None:
    """Like the prototype's smoke tool: no base URL, every URL taken from an answer."""
    async with httpx.AsyncClient(timeout=15) as http:
        user = (await http.post(f"{server.url}/users", json={"username": "smoke"})).json()
        headers = auth(user["access_token"])
        room = (
            await http.post(f"{server.url}/rooms", json={"name": "Smoke"}, headers=headers)
        ).json()
        slot = (
            await http.post(
                f"{server.url}/rooms/{room['id']}/video-upload",
                json={"title": "Smoke"},
                headers=headers,
            )
        ).json()
        uploaded = await http.put(slot["upload_url"], content=clip, headers=headers)
        assert uploaded.status_code == 200, uploaded.text
        async with httpx.AsyncClient(base_url=server.url) as client:
            video = await wait_for(client, slot["id"], user["access_token"])
        assert video["status"] == "ready"
        assert (await http.get(video["playback_url"])).status_code == 200
        assert (await http.get(video["thumbnail_url"])).status_code == 200


@pytest.mark.parametrize("public", [None, PUBLIC])
async def test_the_ready_frame_carries_the_playback_url_absolute_when_a_public_url_is_set(
    make_settings: Callable[..., Settings], clip: bytes, public: str | None
) -> None:
    """video_status goes to every socket of the room at once: absolute with a public URL,
    else the path (no request to take a host from), as before."""
    settings = make_settings(public_url=public, media={"segment_seconds": 1.0})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as client:
        user = await create_guest(client, "uploader")
        token = user["access_token"]
        room = await create_room(client, token, "Videos")
        slot = await new_slot(client, token, room["id"])
        async with connect_ws(live, ws_path(room["id"], user["id"], token)) as ws:
            await receive_until(ws, "presence")
            put = await client.put(_path(slot["upload_url"]), content=clip, headers=auth(token))
            assert put.status_code == 200, put.text
            while (frame := await receive_until(ws, "video_status", timeout=60))["status"] != (
                "ready"
            ):
                assert frame["status"] != "failed", frame
                assert "playback_url" not in frame
        path = f"/media/videos/{slot['id']}/master.m3u8"
        assert frame["playback_url"] == (f"{public}{path}" if public else path)
        assert (await client.get(path)).status_code == 200
