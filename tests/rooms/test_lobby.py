"""The lobby of private rooms: knock, wait, admit or deny, through the API and sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

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


async def _private(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    owner = await create_guest(client, "owner")
    room = await create_room(client, owner["access_token"], "Secret", private=True)
    return room, owner


async def _knock(
    client: httpx.AsyncClient, room: dict[str, Any], who: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/rooms/{room['id']}/lobby", headers=auth(who["access_token"]))


async def _status(client: httpx.AsyncClient, room: dict[str, Any], who: dict[str, Any]) -> str:
    response = await client.get(f"/rooms/{room['id']}/lobby/me", headers=auth(who["access_token"]))
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def test_knock_admit_makes_a_member_and_moderators_hear_of_it(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, owner = await _private(client)
    guest = await create_guest(client, "guest")
    # An outsider cannot see the room, nor connect to it.
    assert (
        await client.get(f"/rooms/{room['id']}", headers=auth(guest["access_token"]))
    ).status_code == 404
    async with connect_ws(server, ws_path(room["id"], owner["id"], owner["access_token"])) as o:
        await receive_until(o, "presence")
        knocked = await _knock(client, room, guest)
        assert knocked.status_code == 201, knocked.text
        assert knocked.json()["status"] == "pending"
        frame = await receive_until(o, "lobby")
        assert frame["action"] == "knock" and frame["user_id"] == guest["id"]
        assert frame["username"] == "guest"
        # Knocking again while waiting is the same knock, announced once.
        again = await _knock(client, room, guest)
        assert again.status_code == 200 and again.json()["status"] == "pending"
        waiting = await client.get(
            f"/rooms/{room['id']}/lobby", headers=auth(owner["access_token"])
        )
        assert [k["user_id"] for k in waiting.json()] == [guest["id"]]
        assert await _status(client, room, guest) == "pending"

        admitted = await client.post(
            f"/rooms/{room['id']}/lobby/{guest['id']}/admit", headers=auth(owner["access_token"])
        )
        assert admitted.status_code == 200, admitted.text
        frame = await receive_until(o, "lobby")
        assert frame["action"] == "admit" and frame["by"] == owner["id"]
    assert await _status(client, room, guest) == "admitted"
    seen = await client.get(f"/rooms/{room['id']}", headers=auth(guest["access_token"]))
    assert seen.status_code == 200 and guest["id"] in seen.json()["users"]
    # A member now: the socket opens, and the lobby is empty.
    async with connect_ws(server, ws_path(room["id"], guest["id"], guest["access_token"])) as g:
        await receive_until(g, "presence")
    waiting = await client.get(f"/rooms/{room['id']}/lobby", headers=auth(owner["access_token"]))
    assert waiting.json() == []
    # Knocking as a member says so without a knock.
    assert (await _knock(client, room, guest)).json()["status"] == "admitted"


async def test_deny_is_a_clear_refusal(client: httpx.AsyncClient) -> None:
    room, owner = await _private(client)
    guest = await create_guest(client, "guest")
    assert (await _knock(client, room, guest)).status_code == 201
    denied = await client.post(
        f"/rooms/{room['id']}/lobby/{guest['id']}/deny", headers=auth(owner["access_token"])
    )
    assert denied.status_code == 200
    assert await _status(client, room, guest) == "denied"
    assert (
        await client.get(f"/rooms/{room['id']}", headers=auth(guest["access_token"]))
    ).status_code == 404
    # Deciding twice: nobody is waiting any more.
    twice = await client.post(
        f"/rooms/{room['id']}/lobby/{guest['id']}/admit", headers=auth(owner["access_token"])
    )
    assert twice.status_code == 404


async def test_who_may_manage_and_who_may_knock(client: httpx.AsyncClient) -> None:
    room, owner = await _private(client)
    member = await create_guest(client, "member")
    joined = await client.post(
        f"/rooms/{room['id']}/join",
        json={"invite_code": room["invite_code"]},
        headers=auth(member["access_token"]),
    )
    assert joined.status_code == 200
    guest = await create_guest(client, "guest")
    await _knock(client, room, guest)
    lobby = f"/rooms/{room['id']}/lobby"
    # A plain member, an outsider and anonymous callers cannot see or decide.
    assert (await client.get(lobby, headers=auth(member["access_token"]))).status_code == 403
    assert (await client.get(lobby, headers=auth(guest["access_token"]))).status_code == 404
    assert (await client.get(lobby)).status_code == 401
    assert (await client.post(lobby)).status_code == 401
    for who in (member, guest):
        response = await client.post(
            f"{lobby}/{guest['id']}/admit", headers=auth(who["access_token"])
        )
        assert response.status_code in (403, 404)
    # A promoted moderator can.
    promoted = await client.post(
        f"/rooms/{room['id']}/members/{member['id']}/role",
        json={"role": "moderator"},
        headers=auth(owner["access_token"]),
    )
    assert promoted.status_code == 200
    assert (await client.get(lobby, headers=auth(member["access_token"]))).status_code == 200
    # Public rooms have no lobby; unknown rooms are 404.
    public = await create_room(client, owner["access_token"], "Open")
    assert (await _knock(client, public, guest)).status_code == 400
    assert (await _knock(client, {"id": "no-such-room"}, guest)).status_code == 404
    # Withdrawing a knock.
    mine = f"{lobby}/me"
    assert (await client.delete(mine, headers=auth(guest["access_token"]))).status_code == 204
    assert (await client.delete(mine, headers=auth(guest["access_token"]))).status_code == 404
    assert (await client.get(mine, headers=auth(guest["access_token"]))).status_code == 404


async def test_banned_people_cannot_knock_and_a_ban_drops_a_knock(
    client: httpx.AsyncClient,
) -> None:
    room, owner = await _private(client)
    guest = await create_guest(client, "guest")
    assert (await _knock(client, room, guest)).status_code == 201
    banned = await client.post(
        f"/rooms/{room['id']}/members/{guest['id']}/ban", headers=auth(owner["access_token"])
    )
    assert banned.status_code == 200
    waiting = await client.get(f"/rooms/{room['id']}/lobby", headers=auth(owner["access_token"]))
    assert waiting.json() == []
    refused = await _knock(client, room, guest)
    assert refused.status_code == 403 and "banned" in refused.json()["detail"]


async def test_lobby_size_and_knock_rate_are_limited(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        lobby={"max_size": 2, "knocks": 3, "knock_window_seconds": 60},
        rate_limit={"enabled": True, "requests": 10_000, "user_writes": 10_000},
    )
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        room, _ = await _private(client)
        people = [await create_guest(client, f"p{i}") for i in range(3)]
        assert (await _knock(client, room, people[0])).status_code == 201
        assert (await _knock(client, room, people[1])).status_code == 201
        full = await _knock(client, room, people[2])
        assert full.status_code == 409 and "full" in full.json()["detail"]
        # The same person knocking over and over is held to the knock rate.
        codes = [(await _knock(client, room, people[0])).status_code for _ in range(3)]
        assert codes[:2] == [200, 200] and codes[2] == 429
        limited = await _knock(client, room, people[0])
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


async def test_concurrent_knocks_of_one_person_make_one_knock(client: httpx.AsyncClient) -> None:
    room, owner = await _private(client)
    guest = await create_guest(client, "guest")
    answers = await asyncio.gather(*(_knock(client, room, guest) for _ in range(5)))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    waiting = await client.get(f"/rooms/{room['id']}/lobby", headers=auth(owner["access_token"]))
    assert [k["user_id"] for k in waiting.json()] == [guest["id"]]


async def test_an_outsider_still_cannot_open_the_socket(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room, _ = await _private(client)
    guest = await create_guest(client, "guest")
    await _knock(client, room, guest)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect_ws(server, ws_path(room["id"], guest["id"], guest["access_token"])):
            pass
    assert refused.value.response.status_code in (403, 404)


async def test_one_address_cannot_fill_a_lobby_with_throwaway_guests(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        lobby={"max_size": 10, "knocks_per_address": 3},
        rate_limit={"enabled": True, "requests": 10_000, "user_writes": 10_000},
    )
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        room, owner = await _private(client)
        guests = [await create_guest(client, f"g{i}") for i in range(6)]
        answers = [await _knock(client, room, guest) for guest in guests]
        assert [a.status_code for a in answers] == [201] * 3 + [429] * 3
        assert "address" in answers[-1].json()["detail"]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        waiting = await client.get(
            f"/rooms/{room['id']}/lobby", headers=auth(owner["access_token"])
        )
        assert len(waiting.json()) == 3
        # Counted per room: the same address may still knock elsewhere.
        other, _ = await _private(client)
        assert (await _knock(client, other, guests[-1])).status_code == 201


async def test_concurrent_knocks_never_pass_the_lobby_size(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(lobby={"max_size": 3})
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        room, owner = await _private(client)
        guests = [await create_guest(client, f"g{i}") for i in range(12)]
        answers = await asyncio.gather(*(_knock(client, room, guest) for guest in guests))
        assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 9
        waiting = await client.get(
            f"/rooms/{room['id']}/lobby", headers=auth(owner["access_token"])
        )
        assert len(waiting.json()) == 3
