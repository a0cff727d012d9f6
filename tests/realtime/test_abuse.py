"""Socket abuse that stays within the frame limits: what one client may cost others.

Counts frames and bytes, never time: a device toggle costs each recipient one small
frame whatever the room's size; presence lists are coalesced; deep JSON is a
``bad_frame``; sockets per address hold under concurrent handshakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import websockets

from tests.support import (
    LiveServer,
    connect_ws,
    create_guest,
    create_room,
    receive_until,
    run_server,
    ws_path,
)
from videochat.config import Settings


async def _people(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    return [await create_guest(client, f"user{index}") for index in range(count)]


def _path(room_id: str, user: dict[str, Any]) -> str:
    return ws_path(room_id, user["id"], user["access_token"])


async def _until_everyone_listed(socket: Any, count: int) -> None:
    async with asyncio.timeout(15):
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == "presence" and len(frame["participants"]) == count:
                return


async def test_deeply_nested_json_is_a_bad_frame_and_the_socket_stays(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice, bob = await _people(client, 2)
    room = await create_room(client, alice["access_token"])
    async with (
        connect_ws(server, _path(room["id"], alice)) as socket,
        connect_ws(server, _path(room["id"], bob)),
    ):
        await _until_everyone_listed(socket, 2)
        for deep in ("[" * 60_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
            await socket.send(deep)
            error = await receive_until(socket, "error")
            assert error["code"] == "bad_frame"
        # Valid JSON the parser takes but that is too deep to relay: refused as well.
        depth = 980
        data = '{"d":' * depth + "{}" + "}" * depth
        await socket.send(f'{{"type":"signal","to":"{bob["id"]}","data":{data}}}')
        error = await receive_until(socket, "error")
        assert error["code"] in {"bad_frame", "bad_signal"}
        await socket.send(json.dumps({"type": "ping", "time": 7}))
        assert (await receive_until(socket, "pong"))["time"] == 7


async def test_device_toggles_cost_each_recipient_one_small_frame(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    """N sockets, M toggles: frames and bytes per recipient do not grow with N."""
    size, toggles = 12, 20
    people = await _people(client, size)
    room = await create_room(client, people[0]["access_token"])
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(connect_ws(server, _path(room["id"], person)))
            for person in people
        ]
        await asyncio.gather(*(_until_everyone_listed(s, size) for s in sockets))
        toggler, others = sockets[0], sockets[1:]
        for index in range(toggles):
            await toggler.send(json.dumps({"type": "media_state", "audio": index % 2 == 0}))
        # The marker: relayed after every toggle, through the same broker.
        await toggler.send(json.dumps({"type": "typing", "typing": True}))

        async def count(socket: Any) -> tuple[Counter[str], int]:
            kinds: Counter[str] = Counter()
            received = 0
            async with asyncio.timeout(15):
                while True:
                    text = await socket.recv()
                    frame = json.loads(text)
                    if frame["type"] == "typing":
                        return kinds, received
                    kinds[frame["type"]] += 1
                    received += len(text.encode())

        results = await asyncio.gather(*(count(s) for s in others))
    one_media_state = len(
        json.dumps({"type": "media_state", "user_id": people[0]["id"], "audio": False})
    )
    for kinds, received in results:
        assert kinds["media_state"] == toggles
        # At most one list (a join's trailing edge) may land among the toggles.
        assert kinds["presence"] <= 1
        assert sum(kinds.values()) <= toggles + 1
        assert received <= toggles * (one_media_state + 40) + 150 * size


async def test_a_burst_of_joins_sends_few_lists_and_the_last_one_is_complete(
    client: httpx.AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(realtime={"presence_interval_seconds": 2})
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        joiners = 12
        people = await _people(http, joiners + 1)
        room = await create_room(http, people[0]["access_token"])
        async with contextlib.AsyncExitStack() as stack:
            first = await stack.enter_async_context(
                connect_ws(server, _path(room["id"], people[0]))
            )
            await _until_everyone_listed(first, 1)
            await asyncio.gather(
                *(
                    stack.enter_async_context(connect_ws(server, _path(room["id"], person)))
                    for person in people[1:]
                )
            )
            lists = 0
            async with asyncio.timeout(15):
                while True:
                    frame = json.loads(await first.recv())
                    if frame["type"] != "presence":
                        continue
                    lists += 1
                    if len(frame["participants"]) == joiners + 1:
                        break
    # Without coalescing the first socket got one list per join (12).
    assert lists <= 4


async def test_sockets_per_address_hold_under_concurrent_handshakes(
    client: httpx.AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    limit, attempts = 3, 12
    settings = make_settings(
        rate_limit={
            "enabled": True,
            "requests": 10_000,
            "user_writes": 10_000,
            "ws_connects": 10_000,
            "ws_connections_per_ip": limit,
        }
    )
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        people = await _people(http, attempts)
        room = await create_room(http, people[0]["access_token"])
        for person in people[1:]:  # members already: the handshake costs the same for all
            await http.post(
                f"/rooms/{room['id']}/join",
                headers={"Authorization": f"Bearer {person['access_token']}"},
            )
        results = await asyncio.gather(
            *(
                websockets.connect(server.ws_url + _path(room["id"], person), open_timeout=10)
                for person in people
            ),
            return_exceptions=True,
        )
        opened = [r for r in results if isinstance(r, websockets.ClientConnection)]
        refused = [r for r in results if isinstance(r, websockets.InvalidStatus)]
        try:
            assert len(opened) == limit
            assert len(refused) == attempts - limit
            assert all(r.response.status_code == 403 for r in refused)
        finally:
            for socket in opened:
                await socket.close()
        # The slots come back when the sockets close (and after refused handshakes).
        async with asyncio.timeout(10):
            while server.context.hub.open_from("127.0.0.1"):
                await asyncio.sleep(0.05)
        again = await websockets.connect(server.ws_url + _path(room["id"], people[0]))
        await again.close()
