"""Protocol versions on the socket: no ``v`` (the prototype's way) gets the prototype's
frames only, in both auth modes; ``?v=2`` gets the whole protocol (the web client)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.support import LiveServer, connect_ws, create_guest, create_room, ws_path


async def _next(ws: websockets.ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


async def _two_guests_and_a_room(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    alice = await create_guest(client, "alice")
    bob = await create_guest(client, "bob")
    room = await create_room(client, alice["access_token"])
    return alice, bob, room


async def test_v1_in_token_mode_gets_the_prototype_sequence(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    alice, bob, room = await _two_guests_and_a_room(client)
    a_path = ws_path(room["id"], alice["id"], alice["access_token"], v=None)
    b_path = ws_path(room["id"], bob["id"], bob["access_token"], v=None)
    async with connect_ws(server, a_path) as a:
        assert (await _next(a))["message"] == "alice joined the chat"
        async with connect_ws(server, b_path) as b:
            assert (await _next(a))["message"] == "bob joined the chat"
            assert (await _next(b))["message"] == "bob joined the chat"
            await a.send(json.dumps({"content": "hello"}))
            echo = await _next(a)
            assert echo["type"] == "message" and echo["content"] == "hello"
            assert await _next(b) == echo
        left = await _next(a)
        assert left["type"] == "user_left" and left["username"] == "bob"


async def test_v1_and_v2_in_one_room(server: LiveServer, client: httpx.AsyncClient) -> None:
    """The v2 socket's typing, presence, media and reactions never reach the v1 socket."""
    alice, bob, room = await _two_guests_and_a_room(client)
    async with connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as a:
        welcome = await _next(a)
        assert welcome["type"] == "welcome" and welcome["user_id"] == alice["id"]
        old_path = ws_path(room["id"], bob["id"], bob["access_token"], v=1)
        async with connect_ws(server, old_path) as b:
            assert (await _next(b))["type"] == "user_joined"
            await a.send(json.dumps({"type": "typing", "typing": True}))
            await a.send(json.dumps({"type": "media_state", "audio": True}))
            await a.send(json.dumps({"type": "ping", "time": 1}))
            await a.send(json.dumps({"type": "message", "content": "first"}))
            first = await _next(b)
            assert first["type"] == "message" and first["content"] == "first"
            await a.send(json.dumps({"type": "reaction", "id": first["id"], "emoji": "👍"}))
            await a.send(json.dumps({"type": "edit", "id": first["id"], "content": "changed"}))
            await a.send(json.dumps({"content": "second"}))
            assert (await _next(b))["content"] == "second"
            seen_by_a: set[str] = set()
            while (frame := await _next(a)).get("content") != "second":
                seen_by_a.add(frame["type"])
            assert {"presence", "user_joined", "media_state", "pong", "message"} <= seen_by_a
            assert {"reaction", "message_edited"} <= seen_by_a
        # The v2 socket gets the leave and the new participant list.
        kinds: set[str] = set()
        while not {"user_left", "presence"} <= kinds:
            kinds.add((await _next(a))["type"])


async def test_v1_gets_no_answer_to_frames_the_prototype_never_had(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    path = ws_path(room["id"], alice["id"], alice["access_token"], v=None)
    async with connect_ws(server, path) as ws:
        assert (await _next(ws))["type"] == "user_joined"
        for junk in ("not json", "[1, 2]", json.dumps({"type": "bogus"}), json.dumps({"x": 1})):
            await ws.send(junk)
        await ws.send(b"\x00binary")
        # A message the server understood but refuses is answered: it will not appear.
        await ws.send(json.dumps({"content": "   "}))
        refused = await _next(ws)
        assert refused["type"] == "error" and refused["code"] == "invalid"
        await ws.send(json.dumps({"content": "ok"}))
        assert (await _next(ws))["content"] == "ok"


async def test_v2_answers_malformed_frames(server: LiveServer, client: httpx.AsyncClient) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    async with connect_ws(server, ws_path(room["id"], alice["id"], alice["access_token"])) as ws:
        assert (await _next(ws))["type"] == "welcome"
        await ws.send("not json")
        await ws.send(json.dumps({"type": "bogus"}))
        codes = set()
        while len(codes) < 2:
            frame = await _next(ws)
            if frame["type"] == "error":
                codes.add(frame["code"])
        assert codes == {"bad_frame", "unknown_type"}


@pytest.mark.parametrize("version", ["3", "0", "two", ""])
async def test_an_unknown_version_is_refused(
    server: LiveServer, client: httpx.AsyncClient, version: str
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    path = ws_path(room["id"], alice["id"], alice["access_token"], v=None) + f"&v={version}"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect_ws(server, path):
            pass
    assert refused.value.response.status_code == 403
