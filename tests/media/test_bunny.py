"""Provider ``bunny`` against a local stand-in that follows Bunny Stream's documented API.

Bunny Stream cannot be reached from here, so a tiny FastAPI app plays its part:
``POST /library/{id}/videos`` (create, answers the video object with its ``guid``),
``PUT /library/{id}/videos/{guid}`` (the raw bytes), ``GET /library/{id}/videos/{guid}``
(the video object), each checking the ``AccessKey`` header like the real service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.media import samples
from tests.media.api_helpers import leftovers, new_slot, put
from tests.processes import free_port
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
from videochat.media.bunny import ENCODE_FAILED

LIBRARY_ID = "133"
API_KEY = "library-api-key"
WEBHOOK_SECRET = "hook-secret-for-tests"
CDN = "vz-test.b-cdn.net"


@dataclass
class StandIn:
    """What the stand-in saw, and switches to make it misbehave."""

    url: str = ""
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    fail_with: int | None = None


def _standin_app(state: StandIn) -> FastAPI:
    app = FastAPI()

    def refuse(request: Request, library_id: str) -> JSONResponse | None:
        state.calls.append((request.method, request.url.path, request.headers.get("accesskey")))
        if request.headers.get("accesskey") != API_KEY:
            return JSONResponse({"success": False, "message": "Unauthorized"}, status_code=401)
        if library_id != LIBRARY_ID:
            return JSONResponse({"success": False, "message": "Not found"}, status_code=404)
        if state.fail_with is not None:
            return JSONResponse({"success": False, "message": "Down"}, status_code=state.fail_with)
        return None

    @app.post("/library/{library_id}/videos")
    async def create(library_id: str, request: Request) -> JSONResponse:
        if refused := refuse(request, library_id):
            return refused
        body = await request.json()
        guid = str(uuid.uuid4())
        video = {
            "videoLibraryId": int(library_id),
            "guid": guid,
            "title": body["title"],
            "status": 0,
            "length": 0,
            "width": 0,
            "height": 0,
        }
        state.videos[guid] = video
        return JSONResponse(video)

    @app.put("/library/{library_id}/videos/{guid}")
    async def upload(library_id: str, guid: str, request: Request) -> JSONResponse:
        if refused := refuse(request, library_id):
            return refused
        if guid not in state.videos:
            return JSONResponse({"success": False, "message": "Not found"}, status_code=404)
        state.uploads[guid] = await request.body()
        state.videos[guid].update(length=2, width=320, height=180, status=1)
        return JSONResponse({"success": True, "message": "OK", "statusCode": 200})

    @app.delete("/library/{library_id}/videos/{guid}")
    async def remove(library_id: str, guid: str, request: Request) -> JSONResponse:
        if refused := refuse(request, library_id):
            return refused
        if state.videos.pop(guid, None) is None:
            return JSONResponse({"success": False, "message": "Not found"}, status_code=404)
        return JSONResponse({"success": True, "message": "OK", "statusCode": 200})

    @app.get("/library/{library_id}/videos/{guid}")
    async def get(library_id: str, guid: str, request: Request) -> JSONResponse:
        if refused := refuse(request, library_id):
            return refused
        if guid not in state.videos:
            return JSONResponse({"success": False, "message": "Not found"}, status_code=404)
        return JSONResponse(state.videos[guid])

    return app


@contextlib.asynccontextmanager
async def _serve(app: FastAPI) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("bunny-clip") / "clip.mp4"
    return samples.write_video(path, width=160, height=90, seconds=1.0).read_bytes()


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: nothing here depends on the database (the worker tests use both)."""
    return sqlite_url


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    state = StandIn()
    async with _serve(_standin_app(state)) as url:
        state.url = url
        yield state


def _bunny(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "api_key": API_KEY,
        "library_id": LIBRARY_ID,
        "cdn_hostname": CDN,
        "webhook_secret": WEBHOOK_SECRET,
        "api_base_url": base_url,
        "timeout_seconds": 5,
        **extra,
    }


@pytest.fixture
def settings(make_settings: Callable[..., Settings], standin: StandIn) -> Settings:
    return make_settings(bunny=_bunny(standin.url))


async def _setup(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await create_guest(client, "uploader")
    room = await create_room(client, user["access_token"], "Bunny videos")
    return user, room


async def _hook(
    client: httpx.AsyncClient,
    guid: str,
    status: int,
    *,
    secret: str | None = WEBHOOK_SECRET,
    library: int | str = int(LIBRARY_ID),
) -> httpx.Response:
    params = {"secret": secret} if secret is not None else {}
    body = {"VideoLibraryId": library, "VideoGuid": guid, "Status": status}
    return await client.post("/bunny-webhook", params=params, json=body)


async def _video(client: httpx.AsyncClient, video_id: str, token: str) -> dict[str, Any]:
    response = await client.get(f"/videos/{video_id}", headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _uploaded(
    client: httpx.AsyncClient, standin: StandIn, clip: bytes
) -> tuple[str, dict[str, Any], str]:
    """A Bunny video whose bytes reached the stand-in: (token, slot, guid)."""
    user, room = await _setup(client)
    token = user["access_token"]
    slot = await new_slot(client, token, room["id"])
    response = await put(client, slot["upload_url"], clip, token)
    assert response.status_code == 200, response.text
    (guid,) = standin.uploads
    return token, slot, guid


async def test_create_upload_webhook_ready_with_cdn_urls(
    client: httpx.AsyncClient, server: LiveServer, standin: StandIn, clip: bytes
) -> None:
    user, room = await _setup(client)
    token = user["access_token"]
    async with connect_ws(server, ws_path(room["id"], user["id"], token)) as socket:
        await receive_until(socket, "presence")
        slot = await new_slot(client, token, room["id"])
        assert slot["status"] == "pending"
        (guid,) = standin.videos
        assert standin.videos[guid]["title"] == "Clip"
        video = await _video(client, slot["id"], token)
        assert video["provider"] == "bunny" and video["playback_url"] is None

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(clip), 7000):  # no Content-Length: relayed as it comes
                yield clip[start : start + 7000]

        response = await put(client, slot["upload_url"], chunked(), token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "uploaded" and body["size_bytes"] == len(clip)
        assert standin.uploads[guid] == clip  # every byte arrived, in order
        assert all(key == API_KEY for _, _, key in standin.calls)
        # Relayed, never stored: no file named after the video, no local job.
        assert leftovers(server.settings.data_dir, slot["id"]) == []
        assert (await _video(client, slot["id"], token))["status"] == "uploaded"

        for code, expected in ((1, "processing"), (2, "processing"), (3, "ready")):
            response = await _hook(client, guid, code)
            assert response.status_code == 200 and response.json() == {"status": "received"}
            assert (await _video(client, slot["id"], token))["status"] == expected

        seen = []
        while not seen or seen[-1] != "ready":
            frame = await receive_until(socket, "video_status")
            seen.append(frame["status"])
        assert seen == ["pending", "uploaded", "processing", "ready"]
        assert frame["playback_url"] == f"https://{CDN}/{guid}/playlist.m3u8"

    video = await _video(client, slot["id"], token)
    assert video["playback_url"] == f"https://{CDN}/{guid}/playlist.m3u8"
    assert video["thumbnail_url"] == f"https://{CDN}/{guid}/thumbnail.jpg"
    assert (video["duration_seconds"], video["width"], video["height"]) == (2.0, 320, 180)
    assert (await put(client, slot["upload_url"], clip, token)).status_code == 409


async def test_deleting_a_bunny_video_deletes_it_at_bunny_too(
    client: httpx.AsyncClient, standin: StandIn, clip: bytes
) -> None:
    token, slot, guid = await _uploaded(client, standin, clip)
    response = await client.delete(f"/videos/{slot['id']}", headers=auth(token))
    assert response.status_code == 204, response.text
    assert ("DELETE", f"/library/{LIBRARY_ID}/videos/{guid}", API_KEY) in standin.calls
    assert guid not in standin.videos
    # A webhook that comes later is acknowledged and ignored.
    assert (await _hook(client, guid, 3)).status_code == 200
    assert (await client.get(f"/videos/{slot['id']}", headers=auth(token))).status_code == 404


async def test_webhook_needs_the_secret_and_checks_what_it_is_told(
    client: httpx.AsyncClient, standin: StandIn, clip: bytes
) -> None:
    token, slot, guid = await _uploaded(client, standin, clip)
    assert (await _hook(client, guid, 3, secret=None)).status_code == 401
    response = await _hook(client, guid, 3, secret="wrong")
    assert response.status_code == 401 and response.json()["detail"]
    raw = json.dumps({"VideoLibraryId": 133, "VideoGuid": guid, "Status": 3}).encode()
    forged = await client.post(
        "/bunny-webhook", content=raw, headers={"X-BunnyStream-Signature": "0" * 64}
    )
    assert forged.status_code == 401
    assert (await _video(client, slot["id"], token))["status"] == "uploaded"

    response = await _hook(client, guid, 3, library=999)
    assert response.status_code == 400 and "library" in response.json()["detail"]
    response = await client.post(
        "/bunny-webhook", params={"secret": WEBHOOK_SECRET}, content=b"{not json"
    )
    assert response.status_code == 400 and response.json()["detail"]
    response = await client.post(
        "/bunny-webhook", params={"secret": WEBHOOK_SECRET}, json={"VideoGuid": guid}
    )
    assert response.status_code == 400
    # A video this service does not know (deleted here, another app's): acknowledged.
    assert (await _hook(client, str(uuid.uuid4()), 3)).json() == {"status": "received"}
    assert (await _video(client, slot["id"], token))["status"] == "uploaded"

    # The secret as a header, and Bunny's own signature of the raw body, both work.
    response = await client.post(
        "/bunny-webhook",
        json={"VideoLibraryId": 133, "VideoGuid": guid, "Status": 1},
        headers={"X-Webhook-Secret": WEBHOOK_SECRET},
    )
    assert response.status_code == 200
    assert (await _video(client, slot["id"], token))["status"] == "processing"
    signature = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = await client.post(
        "/bunny-webhook",
        content=raw,
        headers={"X-BunnyStream-Signature": signature, "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert (await _video(client, slot["id"], token))["status"] == "ready"


async def test_webhooks_are_idempotent_and_never_move_backwards(
    client: httpx.AsyncClient, standin: StandIn, clip: bytes
) -> None:
    token, slot, guid = await _uploaded(client, standin, clip)
    assert (await _hook(client, guid, 3)).status_code == 200
    ready = await _video(client, slot["id"], token)
    assert ready["status"] == "ready"
    gets = sum(1 for method, _, _ in standin.calls if method == "GET")
    for code in (3, 2, 1, 0, 4, 5, 9, 42):  # repeats, stale codes, a late failure, unknowns
        assert (await _hook(client, guid, code)).status_code == 200
    assert await _video(client, slot["id"], token) == ready  # not even updated_at moved
    assert sum(1 for method, _, _ in standin.calls if method == "GET") == gets


async def test_failed_encoding_ends_failed_with_a_reason(
    client: httpx.AsyncClient, standin: StandIn, clip: bytes
) -> None:
    token, slot, guid = await _uploaded(client, standin, clip)
    assert (await _hook(client, guid, 2)).status_code == 200
    assert (await _hook(client, guid, 5)).status_code == 200
    video = await _video(client, slot["id"], token)
    assert video["status"] == "failed" and video["error"] == ENCODE_FAILED
    assert video["playback_url"] is None
    assert (await _hook(client, guid, 3)).status_code == 200  # failed is final
    assert (await _video(client, slot["id"], token))["status"] == "failed"


async def test_bunny_down_or_refusing_is_a_502_and_nothing_is_stored_wrongly(
    client: httpx.AsyncClient, standin: StandIn, clip: bytes, tmp_path: Path
) -> None:
    user, room = await _setup(client)
    token = user["access_token"]
    slot = await new_slot(client, token, room["id"])
    (guid,) = standin.videos

    text = samples.write_text(tmp_path / "notes.txt").read_bytes()
    response = await put(client, slot["upload_url"], text, token)
    assert response.status_code == 415  # refused here: nothing went to Bunny
    assert [method for method, _, _ in standin.calls] == ["POST"]

    standin.fail_with = 503
    response = await put(client, slot["upload_url"], clip, token)
    assert response.status_code == 502
    assert "Bunny Stream refused to upload the video (HTTP 503)" in response.json()["detail"]
    assert (await _video(client, slot["id"], token))["status"] == "pending"
    response = await client.post(
        f"/rooms/{room['id']}/video-upload", json={"title": "Another"}, headers=auth(token)
    )
    assert response.status_code == 502 and "Bunny Stream" in response.json()["detail"]
    listed = (await client.get(f"/rooms/{room['id']}/videos", headers=auth(token))).json()
    assert [video["id"] for video in listed] == [slot["id"]]  # no half-made video

    standin.fail_with = None  # Bunny is back: the same slot takes the upload
    assert (await put(client, slot["upload_url"], clip, token)).status_code == 200
    assert standin.uploads[guid] == clip
    response = await client.post(
        "/uploads/tus", headers={**auth(token), "Tus-Resumable": "1.0.0", "Upload-Length": "10"}
    )
    assert response.status_code == 409 and "Bunny" in response.json()["detail"]


async def test_unreachable_bunny_or_a_wrong_key(
    make_settings: Callable[..., Settings], standin: StandIn
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for base, key, expected in (
        (closed, API_KEY, "unreachable"),
        (standin.url, "wrong-key", "HTTP 401"),
    ):
        settings = make_settings(bunny=_bunny(base, api_key=key))
        async with (
            run_server(settings) as live,
            httpx.AsyncClient(base_url=live.url, timeout=15) as client,
        ):
            user, room = await _setup(client)
            response = await client.post(
                f"/rooms/{room['id']}/video-upload",
                json={"title": "Clip"},
                headers=auth(user["access_token"]),
            )
            assert response.status_code == 502, response.text
            assert expected in response.json()["detail"]
            listed = await client.get(f"/rooms/{room['id']}/videos")
            assert listed.json() == []
