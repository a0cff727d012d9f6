"""The prototype's API (DESIGN.md section 2), row by row, as the prototype's clients use it.

Open auth mode, no tokens: identity in paths and bodies. Socket frames are read by
position, the way the prototype's own tests read them: the next frame must be the one
the prototype sent, not merely one of a kind somewhere later.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.media.samples import write_video
from tests.support import LiveServer, connect_ws, run_server
from videochat.config import Settings

WEBHOOK_SECRET = "compat-webhook-secret"
LIBRARY_ID = "4242"


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    async with run_server(make_settings(auth_mode="open")) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def _user(client: httpx.AsyncClient, username: str) -> dict[str, Any]:
    response = await client.post("/users", json={"username": username})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _room(client: httpx.AsyncClient, name: str = "General") -> dict[str, Any]:
    response = await client.post("/rooms", json={"name": name})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _next(ws: websockets.ClientConnection) -> dict[str, Any]:
    """The socket's next frame, whatever it is."""
    async with asyncio.timeout(5):
        frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


# --- service endpoints -------------------------------------------------------------


async def test_root(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert {"message", "version", "docs", "health", "chat"} <= set(body)
    assert body["docs"] == "/docs" and body["health"] == "/health" and body["chat"] == "/chat"
    browser = await client.get("/", headers={"Accept": "text/html"})
    assert browser.status_code in {302, 303, 307, 308}


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert {"timestamp", "version", "environment", "services", "stats"} <= set(body)
    assert {"active_rooms", "active_users", "total_messages"} <= set(body["stats"])


async def test_debug(client: httpx.AsyncClient) -> None:
    response = await client.get("/_debug")
    assert response.status_code == 200
    assert {"bunny_enabled", "environment"} <= set(response.json())


async def test_metrics(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    body = response.json()
    assert {"total", "successful", "failed", "success_rate", "average_duration_ms"} <= set(
        body["requests"]
    )
    assert {
        "active_connections",
        "total_connections",
        "messages_sent",
        "messages_received",
    } <= set(body["websocket"])
    assert {"live_streams_created", "videos_uploaded", "videos_processed"} <= set(body["video"])


# --- users and rooms ------------------------------------------------------------------


async def test_create_and_list_users(client: httpx.AsyncClient) -> None:
    alice = await _user(client, "alice")
    assert {"id", "username", "joined_at", "access_token"} <= set(alice)
    assert alice["username"] == "alice"
    for bad in ("a", "x" * 51, "no spaces", "bad!"):
        response = await client.post("/users", json={"username": bad})
        assert response.status_code == 422, bad
        assert response.json()["detail"]
    await _user(client, "bob")
    listed = await client.get("/users", params={"limit": 1, "offset": 1})
    assert listed.status_code == 200
    assert len(listed.json()) == 1
    everyone = (await client.get("/users")).json()
    assert {u["username"] for u in everyone} >= {"alice", "bob"}


async def test_create_get_and_list_rooms(client: httpx.AsyncClient) -> None:
    room = await _room(client, "  General  ")
    assert {"id", "name", "created_at", "users"} <= set(room)
    assert room["name"] == "General" and room["users"] == []
    for bad in ("x", "   x   ", "x" * 101):
        response = await client.post("/rooms", json={"name": bad})
        assert response.status_code == 422, bad
    listed = await client.get("/rooms")
    assert listed.status_code == 200
    assert room["id"] in {r["id"] for r in listed.json()}
    one = await client.get(f"/rooms/{room['id']}")
    assert one.status_code == 200 and one.json()["name"] == "General"
    missing = await client.get("/rooms/no-such-room")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Room not found"}


async def test_join(client: httpx.AsyncClient) -> None:
    bob = await _user(client, "bob")
    room = await _room(client)
    joined = await client.post(f"/rooms/{room['id']}/join", json={"user_id": bob["id"]})
    assert joined.status_code == 200
    assert joined.json() == {"message": "User bob joined room General"}
    assert (await client.get(f"/rooms/{room['id']}")).json()["users"] == [bob["id"]]
    ghost = await client.post(f"/rooms/{room['id']}/join", json={"user_id": "ghost"})
    assert ghost.status_code == 404
    nowhere = await client.post("/rooms/nope/join", json={"user_id": bob["id"]})
    assert nowhere.status_code == 404


async def test_message_history(server: LiveServer, client: httpx.AsyncClient) -> None:
    alice = await _user(client, "alice")
    room = await _room(client)
    async with connect_ws(server, f"/ws/{room['id']}/{alice['id']}") as ws:
        assert (await _next(ws))["type"] == "user_joined"
        for n in range(3):
            await ws.send(json.dumps({"content": f"m{n}"}))
            assert (await _next(ws))["content"] == f"m{n}"
    response = await client.get(f"/rooms/{room['id']}/messages")
    assert response.status_code == 200
    history = response.json()
    assert [m["content"] for m in history] == ["m0", "m1", "m2"]  # oldest first
    assert {"id", "user_id", "username", "room_id", "content", "timestamp"} <= set(history[0])
    assert history[0]["username"] == "alice" and history[0]["room_id"] == room["id"]
    limited = (await client.get(f"/rooms/{room['id']}/messages", params={"limit": 2})).json()
    assert [m["content"] for m in limited] == ["m1", "m2"]
    before = history[2]["id"]
    page = await client.get(f"/rooms/{room['id']}/messages", params={"before": before})
    assert [m["content"] for m in page.json()] == ["m0", "m1"]
    assert (await client.get(f"/rooms/{room['id']}/messages?limit=101")).status_code == 422
    missing = await client.get("/rooms/nope/messages")
    assert missing.status_code == 404


# --- the socket, frame by frame -------------------------------------------------------


async def test_socket_frame_sequence_by_position(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    alice = await _user(client, "alice")
    bob = await _user(client, "bob")
    room = await _room(client)
    async with connect_ws(server, f"/ws/{room['id']}/{alice['id']}") as a:
        first = await _next(a)
        assert first["type"] == "user_joined"
        assert first["message"] == "alice joined the chat" and first["timestamp"]

        async with connect_ws(server, f"/ws/{room['id']}/{bob['id']}") as b:
            joined = await _next(a)
            assert joined["type"] == "user_joined"
            assert joined["message"] == "bob joined the chat"
            assert (await _next(b))["message"] == "bob joined the chat"

            await a.send(json.dumps({"content": "hello"}))
            echo = await _next(a)
            assert echo["type"] == "message"
            assert {"id", "user_id", "username", "content", "timestamp"} <= set(echo)
            assert echo["user_id"] == alice["id"] and echo["username"] == "alice"
            assert echo["content"] == "hello"
            assert await _next(b) == echo

            await b.send(json.dumps({"content": "hi alice"}))
            reply = await _next(a)
            assert reply["type"] == "message" and reply["username"] == "bob"
            assert await _next(b) == reply

        left = await _next(a)
        assert left["type"] == "user_left"
        assert left["message"] == "bob left the chat" and left["timestamp"]
        # Nothing else came meanwhile: the next frame is the echo of the next message.
        await a.send(json.dumps({"content": "still here"}))
        assert (await _next(a))["content"] == "still here"


async def test_socket_to_unknown_room_or_user_is_refused(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    alice = await _user(client, "alice")
    room = await _room(client)
    for path in (f"/ws/{room['id']}/ghost", f"/ws/nope/{alice['id']}"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect_ws(server, path):
                pass
        assert refused.value.response.status_code == 403


# --- live streams and videos ---------------------------------------------------------------

LIVE_FIELDS = {"id", "stream_key", "playback_id", "status", "title", "rtmp_url", "pull_url"}


async def test_create_and_list_live_streams(client: httpx.AsyncClient) -> None:
    room = await _room(client)
    response = await client.post(f"/rooms/{room['id']}/live-stream", json={"title": "Show"})
    assert response.status_code == 200, response.text
    stream = response.json()
    assert LIVE_FIELDS | {"whip_url"} <= set(stream)
    assert stream["title"] == "Show" and stream["status"] == "ready"
    # The creator gets the key it publishes with (an anonymous creator too).
    assert stream["stream_key"]
    listed = await client.get(f"/rooms/{room['id']}/live-streams")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()] == [stream["id"]]
    missing = await client.post("/rooms/nope/live-stream", json={"title": "Show"})
    assert missing.status_code == 404


async def test_upload_a_video_and_watch_it_become_ready(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    room = await _room(client)
    response = await client.post(
        f"/rooms/{room['id']}/video-upload", json={"title": "Clip", "description": "a clip"}
    )
    assert response.status_code == 200, response.text
    slot = response.json()
    assert {"id", "upload_url", "status", "title"} <= set(slot)
    assert slot["status"] == "pending" and slot["title"] == "Clip"

    clip = write_video(tmp_path / "clip.mp4", width=160, height=120, seconds=1.0)
    uploaded = await client.put(slot["upload_url"], content=clip.read_bytes())
    assert uploaded.status_code == 200, uploaded.text
    assert {"status", "upload_id"} <= set(uploaded.json())
    assert uploaded.json()["status"] == "uploaded"

    async with asyncio.timeout(60):
        while True:
            videos = await client.get(f"/rooms/{room['id']}/videos")
            assert videos.status_code == 200
            (video,) = videos.json()
            assert {"id", "title", "description", "room_id", "status", "created_at"} <= set(video)
            assert video["status"] in {"uploaded", "processing", "ready"}, video
            if video["status"] == "ready":
                break
            await asyncio.sleep(0.1)
    assert video["id"] == slot["id"] and video["description"] == "a clip"


@pytest.fixture
async def bunny_client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    bunny = {
        "api_key": "compat-key",
        "library_id": LIBRARY_ID,
        "webhook_secret": WEBHOOK_SECRET,
        # Never called: a webhook for a video this service does not know is only acknowledged.
        "api_base_url": "http://127.0.0.1:9",
    }
    async with (
        run_server(make_settings(auth_mode="open", bunny=bunny)) as live,
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        yield http


async def test_bunny_webhook(bunny_client: httpx.AsyncClient) -> None:
    body = json.dumps(
        {"VideoLibraryId": int(LIBRARY_ID), "VideoGuid": "a-guid", "Status": 3}
    ).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = await bunny_client.post(
        "/bunny-webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-BunnyStream-Signature": signature},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "received"}
