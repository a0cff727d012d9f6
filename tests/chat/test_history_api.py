"""Message history: ``GET /rooms/{id}/messages`` with ``limit`` and ``before``."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.support import LiveServer, create_guest, create_room
from videochat.chat import service as chat
from videochat.db.unit_of_work import unit_of_work


async def _seed(server: LiveServer, room_id: str, user: dict[str, str], count: int) -> list[int]:
    sessionmaker: async_sessionmaker = server.context.sessionmaker  # type: ignore[type-arg]
    ids = []
    async with unit_of_work(sessionmaker) as session:
        for index in range(count):
            message = await chat.post(
                session,
                room_id=room_id,
                user_id=user["id"],
                username=user["username"],
                content=f"message {index}",
            )
            ids.append(message.id)
    return ids


async def test_history_is_oldest_first_and_pages_backwards(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    ids = await _seed(server, room["id"], alice, 120)
    url = f"/rooms/{room['id']}/messages"

    default = (await client.get(url)).json()
    assert [m["id"] for m in default] == ids[-50:]
    assert set(default[0]) >= {"id", "user_id", "username", "room_id", "content", "timestamp"}
    assert default[0]["content"] == "message 70"

    seen: list[int] = []
    before = None
    while True:
        params = {"limit": 100, **({"before": before} if before else {})}
        page = (await client.get(url, params=params)).json()
        if not page:
            break
        seen = [m["id"] for m in page] + seen
        before = page[0]["id"]
    assert seen == ids  # every message exactly once, in order


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"before": "abc"}, {"before": 0}])
async def test_bad_history_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, object]
) -> None:
    alice = await create_guest(client, "alice")
    room = await create_room(client, alice["access_token"])
    response = await client.get(f"/rooms/{room['id']}/messages", params=params)
    assert response.status_code == 422


async def test_history_of_unknown_room_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/rooms/missing/messages")
    assert response.status_code == 404
    assert response.json() == {"detail": "Room not found"}
