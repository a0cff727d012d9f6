"""Room capacity under concurrency: joins and socket connects arriving together."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import websockets

from tests.support import LiveServer, auth, create_guest, ws_path

CAPACITY, CROWD = 4, 16


async def _full_room_crowd(client: httpx.AsyncClient) -> tuple[str, list[dict[str, Any]]]:
    owner = await create_guest(client, "owner")
    created = await client.post(
        "/rooms", json={"name": "Small", "capacity": CAPACITY}, headers=auth(owner["access_token"])
    )
    assert created.status_code == 200, created.text
    crowd = [await create_guest(client, f"guest{index}") for index in range(CROWD)]
    return created.json()["id"], crowd


async def _members(client: httpx.AsyncClient, room_id: str) -> int:
    return len((await client.get(f"/rooms/{room_id}/members")).json())


async def test_concurrent_joins_never_pass_the_capacity(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room_id, crowd = await _full_room_crowd(client)
    answers = await asyncio.gather(
        *(
            client.post(f"/rooms/{room_id}/join", headers=auth(person["access_token"]))
            for person in crowd
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * (CAPACITY - 1) + [403] * (CROWD - CAPACITY + 1)
    assert all("full" in a.json()["detail"] for a in answers if a.status_code == 403)
    assert await _members(client, room_id) == CAPACITY


async def test_concurrent_socket_connects_never_pass_the_capacity(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room_id, crowd = await _full_room_crowd(client)
    results = await asyncio.gather(
        *(
            websockets.connect(
                server.ws_url + ws_path(room_id, person["id"], person["access_token"]),
                open_timeout=30,
            )
            for person in crowd
        ),
        return_exceptions=True,
    )
    opened = [r for r in results if isinstance(r, websockets.ClientConnection)]
    try:
        refused = [r for r in results if isinstance(r, websockets.InvalidStatus)]
        assert len(opened) == CAPACITY - 1, results
        assert len(refused) == CROWD - CAPACITY + 1
    finally:
        for socket in opened:
            await socket.close()
    assert await _members(client, room_id) == CAPACITY


async def test_one_person_joining_twice_at_once_is_one_member(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    room_id, crowd = await _full_room_crowd(client)
    person = crowd[0]
    answers = await asyncio.gather(
        *(
            client.post(f"/rooms/{room_id}/join", headers=auth(person["access_token"]))
            for _ in range(CAPACITY + 2)
        )
    )
    assert [a.status_code for a in answers] == [200] * (CAPACITY + 2)
    assert await _members(client, room_id) == 2
