"""The prototype API document's fixed points and auth modes (DESIGN.md section 2, after
the table), checked the way the prototype's clients meet them: sockets without a
protocol version, frames read by position, JSON errors read for ``detail``.

``test_prototype_api.py`` goes through the table row by row in open mode; this module
covers the rules beneath it: token mode's joins and handshakes, the reconnect replay,
failed videos and instant refusals, the rate-limit headers, and production's refusals.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from sqlalchemy.ext.asyncio import create_async_engine

from tests.media import samples
from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    create_room,
    run_server,
    ws_path,
)
from videochat.config import Settings
from videochat.kit.clock import utcnow


async def _next(ws: websockets.ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


def _v1(room_id: str, user: dict[str, Any], **params: Any) -> str:
    """The prototype's socket path in token mode: no protocol version asked."""
    return ws_path(room_id, user["id"], user["access_token"], v=None, **params)


# --- token mode (the default) -----------------------------------------------------------


async def test_join_takes_the_bearer_token_alone_and_refuses_someone_elses_user_id(
    client: httpx.AsyncClient,
) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"], "General")
    path = f"/rooms/{room['id']}/join"
    assert (await client.post(path, json={"user_id": bob["id"]})).status_code == 401
    by_token = await client.post(path, headers=auth(bob["access_token"]))
    assert by_token.status_code == 200
    assert by_token.json() == {"message": "User bob joined room General"}
    same = await client.post(path, json={"user_id": bob["id"]}, headers=auth(bob["access_token"]))
    assert same.status_code == 200
    other = await client.post(
        path, json={"user_id": alice["id"]}, headers=auth(bob["access_token"])
    )
    assert other.status_code == 403 and other.json()["detail"]


async def test_a_refused_handshake_is_403_before_accept_and_sends_nothing(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    secret = await create_room(client, alice["access_token"], "Secret", private=True)
    settings = server.settings
    now = utcnow()
    expired = jwt.encode(
        {
            "sub": alice["id"],
            "typ": "access",
            "jti": "old",
            "iat": now - timedelta(hours=2),
            "exp": now - timedelta(hours=1),
            "iss": settings.jwt.issuer,
            "aud": settings.jwt.audience,
        },
        settings.jwt.secret.get_secret_value(),
        algorithm="HS256",
    )
    refused = {
        "no token": f"/ws/{room['id']}/{alice['id']}",
        "invalid token": f"/ws/{room['id']}/{alice['id']}?token=garbage",
        "expired token": f"/ws/{room['id']}/{alice['id']}?token={expired}",
        "another user's token": f"/ws/{room['id']}/{alice['id']}?token={bob['access_token']}",
        "a private room of others": _v1(secret["id"], bob),
    }
    for reason, path in refused.items():
        with pytest.raises(websockets.InvalidStatus) as caught:
            async with connect_ws(server, path):
                pass
        # Refused before the upgrade: a plain HTTP answer, so no frame can follow.
        assert caught.value.response.status_code == 403, reason
    async with connect_ws(server, _v1(room["id"], alice)) as ws:
        assert (await _next(ws))["message"] == "alice joined the chat"


async def test_reconnect_with_since_replays_each_missed_message_before_live_frames(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    async with connect_ws(server, _v1(room["id"], bob)) as b:
        await _next(b)
        await b.send(json.dumps({"content": "seen"}))
        seen = await _next(b)
    async with connect_ws(server, _v1(room["id"], alice)) as a:
        await _next(a)
        for n in range(3):
            await a.send(json.dumps({"content": f"missed {n}"}))
            await _next(a)
        async with connect_ws(server, _v1(room["id"], bob, since=seen["id"])) as b:
            replayed = [await _next(b) for _ in range(3)]
            assert [m["content"] for m in replayed] == ["missed 0", "missed 1", "missed 2"]
            for message in replayed:
                assert message["type"] == "message"
                assert {"id", "user_id", "username", "content", "timestamp"} <= set(message)
            # Then the live frames: bob's own arrival, then the next message.
            assert (await _next(b))["type"] == "user_joined"
            await a.send(json.dumps({"content": "live"}))
            live = await _next(b)
            assert live["content"] == "live" and live["id"] > replayed[-1]["id"]


async def test_what_cannot_be_processed_fails_with_a_reason_and_the_rest_is_refused_at_once(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    user = await create_guest(client, "uploader")
    token = user["access_token"]
    room = await create_room(client, token, "Videos")

    async def slot() -> dict[str, Any]:
        response = await client.post(
            f"/rooms/{room['id']}/video-upload", json={"title": "x"}, headers=auth(token)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    anonymous = await client.post(f"/rooms/{room['id']}/video-upload", json={"title": "x"})
    assert anonymous.status_code == 401 and anonymous.json()["detail"]
    nowhere = await client.post(
        "/rooms/nope/video-upload", json={"title": "x"}, headers=auth(token)
    )
    assert nowhere.status_code == 404 and nowhere.json()["detail"]
    text = samples.write_text(tmp_path / "notes.txt").read_bytes()
    refused = await client.put((await slot())["upload_url"], content=text, headers=auth(token))
    assert refused.status_code == 415 and refused.json()["detail"]

    clip = samples.write_video(tmp_path / "clip.mp4", width=160, height=120, seconds=1.0)
    broken = samples.truncate_copy(clip, tmp_path / "broken.mp4", keep_fraction=0.3)
    damaged = await slot()
    put = await client.put(damaged["upload_url"], content=broken.read_bytes(), headers=auth(token))
    assert put.status_code == 200, put.text
    async with asyncio.timeout(60):
        while (video := (await client.get(f"/videos/{damaged['id']}")).json())["status"] not in {
            "ready",
            "failed",
        }:
            await asyncio.sleep(0.1)
    assert video["status"] == "failed" and video["error"], video
    listed = (await client.get(f"/rooms/{room['id']}/videos")).json()
    assert {v["status"] for v in listed if v["id"] == damaged["id"]} == {"failed"}


async def test_too_large_is_413_with_detail(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(auth_mode="open", media={"max_upload_bytes": 2048})
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        room = (await http.post("/rooms", json={"name": "Videos"})).json()
        slot = (await http.post(f"/rooms/{room['id']}/video-upload", json={"title": "x"})).json()
        response = await http.put(slot["upload_url"], content=b"\0" * 5000)
        assert response.status_code == 413 and response.json()["detail"]


# --- limits ----------------------------------------------------------------------------


async def test_rate_limited_routes_say_how_much_is_left_and_429_says_when_to_retry(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        auth_mode="open", rate_limit={"enabled": True, "requests": 3, "window_seconds": 60}
    )
    async with run_server(settings) as live, httpx.AsyncClient(base_url=live.url) as http:
        remaining = []
        for _ in range(3):
            response = await http.get("/rooms")
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "3"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        refused = await http.post("/rooms", json={"name": "One more"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1 and refused.json()["detail"]
        for _ in range(5):
            assert (await http.get("/health")).status_code == 200


# --- service health and production -----------------------------------------------------


async def test_health_is_503_unhealthy_when_the_database_is_down(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    working = server.context.engine
    # Nothing listens on port 1: every connection attempt is refused at once.
    server.context.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        response = await client.get("/health")
    finally:
        await server.context.engine.dispose()
        server.context.engine = working
    assert response.status_code == 503 and response.json()["status"] == "unhealthy"


async def test_production_hides_debug_and_refuses_open_mode(
    make_settings: Callable[..., Settings],
) -> None:
    production: dict[str, Any] = {
        "environment": "production",
        "jwt": {"secret": "p" * 40},
        "http": {"allowed_hosts": ["127.0.0.1"]},
    }
    with pytest.raises(ValueError, match="open"):
        make_settings(auth_mode="open", **production)
    async with (
        run_server(make_settings(**production)) as live,
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        missing = await http.get("/_debug")
        assert missing.status_code == 404 and missing.json()["detail"]
