"""A guest who signs out ends their account; their rooms pass to the next in line."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import httpx
import pytest
import websockets

from tests.support import (
    LiveServer,
    auth,
    connect_ws,
    create_guest,
    receive_until,
    room_with_people,
    ws_path,
)

# A private room unless told otherwise.
_room_with = partial(room_with_people, name="Guest room", is_private=True)


async def _sign_out(client: httpx.AsyncClient, person: dict[str, Any]) -> httpx.Response:
    return await client.delete("/users/me", headers=auth(person["access_token"]))


async def _roles(client: httpx.AsyncClient, room: dict[str, Any], viewer: dict[str, Any]) -> Any:
    response = await client.get(f"/rooms/{room['id']}", headers=auth(viewer["access_token"]))
    assert response.status_code == 200, response.text
    body = response.json()
    return body["owner_id"], body["roles"]


async def test_the_longest_standing_moderator_inherits_a_private_room(
    client: httpx.AsyncClient,
) -> None:
    room, (owner, early, mod) = await _room_with(client, "alice2", "early", "mod")
    promoted = await client.post(
        f"/rooms/{room['id']}/members/{mod['id']}/role",
        json={"role": "moderator"},
        headers=auth(owner["access_token"]),
    )
    assert promoted.status_code == 200
    assert (await _sign_out(client, owner)).status_code == 204
    # A moderator outranks a member who has been there longer.
    owner_id, roles = await _roles(client, room, mod)
    assert owner_id == mod["id"]
    assert roles == {mod["id"]: "owner", early["id"]: "member"}
    # The heir runs the room: sees the invite code, may moderate.
    seen = await client.get(f"/rooms/{room['id']}", headers=auth(mod["access_token"]))
    assert seen.json()["invite_code"] == room["invite_code"]
    # The guest is gone for good: the token no longer works, the name is free again.
    assert (await client.get("/auth/me", headers=auth(owner["access_token"]))).status_code == 401
    assert (await _sign_out(client, owner)).status_code == 401
    again = await create_guest(client, "alice2")
    assert again["id"] != owner["id"]


async def test_without_moderators_the_longest_standing_unmuted_member_inherits(
    client: httpx.AsyncClient,
) -> None:
    room, (owner, muted, second, third) = await _room_with(
        client, "owner", "muted", "second", "third"
    )
    response = await client.post(
        f"/rooms/{room['id']}/members/{muted['id']}/mute", headers=auth(owner["access_token"])
    )
    assert response.status_code == 200
    assert (await _sign_out(client, owner)).status_code == 204
    owner_id, roles = await _roles(client, room, second)
    assert owner_id == second["id"]
    assert roles == {muted["id"]: "member", second["id"]: "owner", third["id"]: "member"}


async def test_a_muted_heir_is_unmuted(client: httpx.AsyncClient) -> None:
    room, (owner, only) = await _room_with(client, "owner", "only")
    await client.post(
        f"/rooms/{room['id']}/members/{only['id']}/mute", headers=auth(owner["access_token"])
    )
    assert (await _sign_out(client, owner)).status_code == 204
    members = await client.get(f"/rooms/{room['id']}/members", headers=auth(only["access_token"]))
    assert [(m["user_id"], m["role"], m["muted"]) for m in members.json()] == [
        (only["id"], "owner", False)
    ]


async def test_a_room_with_nobody_else_keeps_no_owner_and_history_keeps_the_name(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (owner,) = await _room_with(client, "loner", is_private=False)
    async with connect_ws(server, ws_path(room["id"], owner["id"], owner["access_token"])) as ws:
        await receive_until(ws, "presence")
        await ws.send(json.dumps({"type": "message", "content": "bye"}))
        await receive_until(ws, "message")
    assert (await _sign_out(client, owner)).status_code == 204
    body = (await client.get(f"/rooms/{room['id']}")).json()
    assert body["owner_id"] is None
    assert body["users"] == []
    history = (await client.get(f"/rooms/{room['id']}/messages")).json()
    # The ended account's id stays on its messages (ids are never reused: it names no one).
    assert [(m["username"], m["content"], m["user_id"]) for m in history] == [
        ("loner", "bye", owner["id"])
    ]
    assert (await client.get(f"/users/{owner['id']}")).status_code == 404


async def test_only_guests_end_this_way(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/auth/register", json={"username": "dana", "password": "correct horse"}
    )
    token = registered.json()["access_token"]
    refused = await client.delete("/users/me", headers=auth(token))
    assert refused.status_code == 403
    assert "POST /auth/logout" in refused.json()["detail"]
    assert (await client.get("/auth/me", headers=auth(token))).status_code == 200
    assert (await client.delete("/users/me")).status_code == 401


async def test_sockets_hear_the_new_owner_and_the_guests_tabs_close(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, (owner, heir) = await _room_with(client, "owner", "heir")
    async with (
        connect_ws(server, ws_path(room["id"], owner["id"], owner["access_token"])) as gone,
        connect_ws(server, ws_path(room["id"], heir["id"], heir["access_token"])) as stays,
    ):
        await receive_until(gone, "presence")
        await receive_until(stays, "presence")
        assert (await _sign_out(client, owner)).status_code == 204
        frame = await receive_until(stays, "moderation")
        promoted = (frame["action"], frame["user_id"], frame["role"])
        assert promoted == ("promote", heir["id"], "owner")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await gone.recv()
        # 4001: "your token is over": the client asks for a new one, and is refused.
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        presence = await receive_until(stays, "presence")
        assert [p["user_id"] for p in presence["participants"]] == [heir["id"]]
