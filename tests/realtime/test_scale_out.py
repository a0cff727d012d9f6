"""Two server processes sharing the real PostgreSQL and Redis behave as one service."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.support import collect, receive_until


def _socket(base: str, room_id: str, user: dict[str, Any], **params: Any) -> Any:
    query = "&".join(
        [f"token={user['access_token']}", "v=2", *(f"{k}={v}" for k, v in params.items())]
    )
    url = base.replace("http", "ws", 1) + f"/ws/{room_id}/{user['id']}?{query}"
    return websockets.connect(url, max_queue=None)


@pytest.mark.postgres
@pytest.mark.redis
async def test_clients_on_two_instances_see_one_room(two_instances: tuple[str, str]) -> None:
    a_url, b_url = two_instances
    async with (
        httpx.AsyncClient(base_url=a_url) as a_http,
        httpx.AsyncClient(base_url=b_url) as b_http,
    ):
        alice = (await a_http.post("/users", json={"username": "alice"})).json()
        bob = (await b_http.post("/users", json={"username": "bob"})).json()
        carol = (await a_http.post("/users", json={"username": "carol"})).json()
        room = (
            await a_http.post(
                "/rooms",
                json={"name": "Everywhere"},
                headers={"Authorization": f"Bearer {alice['access_token']}"},
            )
        ).json()
        rid = room["id"]
        async with contextlib.AsyncExitStack() as stack:
            a = await stack.enter_async_context(_socket(a_url, rid, alice))
            b = await stack.enter_async_context(_socket(b_url, rid, bob))
            c = await stack.enter_async_context(_socket(a_url, rid, carol))
            # Presence spans instances: Alice (on A) sees Bob (on B).
            async with asyncio.timeout(5):
                while True:
                    frame = await receive_until(a, "presence")
                    names = {p["username"] for p in frame["participants"]}
                    if names == {"alice", "bob", "carol"}:
                        break

            await b.send(json.dumps({"type": "typing", "typing": True}))
            typing = await receive_until(a, "typing")
            assert typing["username"] == "bob"

            # Signalling reaches a peer on the other instance, and only that peer.
            await a.send(json.dumps({"type": "signal", "to": bob["id"], "data": {"x": 1}}))
            assert (await receive_until(b, "signal"))["from"] == alice["id"]

            async def send_many(socket: Any, label: str) -> None:
                for index in range(15):
                    await socket.send(json.dumps({"content": f"{label}{index}"}))

            await asyncio.gather(send_many(a, "a"), send_many(b, "b"), send_many(c, "c"))
            seen = await asyncio.gather(*(collect(s, "message", 45, timeout=20) for s in (a, b, c)))

        orders = [[frame["id"] for frame in frames] for frames in seen]
        assert orders[0] == orders[1] == orders[2]
        # Broadcast order is the id order, across instances too.
        assert orders[0] == sorted(orders[0]) and len(set(orders[0])) == 45

        params = {"limit": 100}
        history_a = (await a_http.get(f"/rooms/{rid}/messages", params=params)).json()
        history_b = (await b_http.get(f"/rooms/{rid}/messages", params=params)).json()
        assert history_a == history_b
        assert [m["id"] for m in history_a] == orders[0]
