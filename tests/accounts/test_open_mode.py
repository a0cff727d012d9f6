"""``auth_mode=open``: the prototype's behaviour, identity from paths and bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support import LiveServer, connect_ws, receive_until, run_server


@pytest.fixture
async def open_server(make_settings: Any) -> AsyncIterator[LiveServer]:
    async with run_server(make_settings(auth_mode="open")) as live:
        yield live


@pytest.fixture
async def open_client(open_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=open_server.url) as http:
        yield http


async def test_prototype_flow_without_tokens(
    open_client: httpx.AsyncClient, open_server: LiveServer
) -> None:
    alice = (await open_client.post("/users", json={"username": "alice"})).json()
    bob = (await open_client.post("/users", json={"username": "bob"})).json()
    room = (await open_client.post("/rooms", json={"name": "General"})).json()
    assert room["users"] == [] and room["owner_id"] is None

    joined = await open_client.post(f"/rooms/{room['id']}/join", json={"user_id": bob["id"]})
    assert joined.status_code == 200
    assert joined.json() == {"message": "User bob joined room General"}

    async with connect_ws(open_server, f"/ws/{room['id']}/{alice['id']}") as ws:
        assert (await receive_until(ws, "user_joined"))["message"] == "alice joined the chat"
        await ws.send(json.dumps({"content": "legacy hello"}))
        frame = await receive_until(ws, "message")
        assert frame["content"] == "legacy hello" and frame["username"] == "alice"
    history = (await open_client.get(f"/rooms/{room['id']}/messages")).json()
    assert [m["content"] for m in history] == ["legacy hello"]


async def test_open_mode_404s(open_client: httpx.AsyncClient, open_server: LiveServer) -> None:
    room = (await open_client.post("/rooms", json={"name": "General"})).json()
    unknown_user = await open_client.post(f"/rooms/{room['id']}/join", json={"user_id": "ghost"})
    assert unknown_user.status_code == 404
    assert unknown_user.json() == {"detail": "User not found"}
    no_user = await open_client.post(f"/rooms/{room['id']}/join", json={})
    assert no_user.status_code == 401
    unknown_room = await open_client.post("/rooms/nope/join", json={"user_id": "ghost"})
    assert unknown_room.status_code == 404

    import websockets

    for path in (f"/ws/{room['id']}/ghost", "/ws/nope/ghost"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect_ws(open_server, path):
                pass
        assert refused.value.response.status_code == 403
