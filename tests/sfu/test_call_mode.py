"""A room's call switches from mesh to the SFU above the threshold, and stays until it empties."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.sfu.conftest import sfu_settings
from tests.sfu.janus_server import Janus
from tests.support import LiveServer, auth, connect_ws, create_guest, run_server, ws_path
from videochat.config import Settings
from videochat.db.models import CallRecording, SfuRoom
from videochat.sfu.janus import JanusAdmin

pytestmark = pytest.mark.slow


async def _presence(socket: Any, count: int) -> dict[str, Any]:
    """The next participant list that lists ``count`` people."""
    async with asyncio.timeout(10):
        while True:
            frame: dict[str, Any] = json.loads(await socket.recv())
            if frame["type"] == "presence" and len(frame["participants"]) == count:
                return frame


async def _people_in_a_room(
    client: httpx.AsyncClient, count: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    people = [await create_guest(client, f"p{index}") for index in range(count)]
    created = await client.post(
        "/rooms", json={"name": "Growing call"}, headers=auth(people[0]["access_token"])
    )
    room: dict[str, Any] = created.json()
    for person in people[1:]:
        await client.post(
            f"/rooms/{room['id']}/join", json={}, headers=auth(person["access_token"])
        )
    return room, people


def _socket(server: LiveServer, room: dict[str, Any], person: dict[str, Any]) -> Any:
    return connect_ws(server, ws_path(room["id"], person["id"], person["access_token"]))


async def _grant(client: httpx.AsyncClient, room: dict[str, Any], person: dict[str, Any]) -> Any:
    return await client.post(
        f"/rooms/{room['id']}/call/sfu-grant", headers=auth(person["access_token"])
    )


async def test_the_call_goes_on_the_sfu_above_the_threshold_and_stays_until_it_empties(
    janus: Janus, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(sfu=sfu_settings(janus, threshold=2, max_publishers=12))
    async with (
        run_server(settings) as server,
        httpx.AsyncClient(base_url=server.url, timeout=15) as client,
    ):
        room, (alice, bob, carol) = await _people_in_a_room(client, 3)
        async with contextlib.AsyncExitStack() as stack:
            first = await stack.enter_async_context(_socket(server, room, alice))
            assert (await _presence(first, 1))["call_mode"] == "mesh"
            await stack.enter_async_context(_socket(server, room, bob))
            two = await _presence(first, 2)
            assert two["call_mode"] == "mesh"
            assert "max_call_size" not in two
            # No grant while the call is a mesh: it would only hold a Janus token.
            refused = await _grant(client, room, alice)
            assert refused.status_code == 409, refused.text
            assert "mesh" in refused.json()["detail"]

            third = await stack.enter_async_context(_socket(server, room, carol))
            three = await _presence(first, 3)
            assert (three["call_mode"], three["max_call_size"]) == ("sfu", 12)
            grant = await _grant(client, room, alice)
            assert grant.status_code == 200, grant.text
            janus_room = grant.json()["room"]
            await third.close()
            # Back to two people: still on the SFU (no switching back mid-call).
            assert (await _presence(first, 2))["call_mode"] == "sfu"
            assert (await _grant(client, room, bob)).status_code == 200
        # Everyone left: the call is over, its VideoRoom destroyed and its grants gone.
        async with httpx.AsyncClient(timeout=10) as http:
            admin = JanusAdmin(http, janus.admin_url, janus.admin_secret)

            async def destroyed() -> bool:
                answer = await admin.videoroom({"request": "exists", "room": janus_room})
                return answer.get("exists") is False

            async with asyncio.timeout(10):
                while not await destroyed():
                    await asyncio.sleep(0.1)
            assert not any(token.startswith("vc1-") for token in await admin.tokens())
        async with server.context.sessionmaker() as session:
            assert await session.get(SfuRoom, room["id"]) is None
        # The next call starts as a mesh again.
        async with _socket(server, room, alice) as again:
            assert (await _presence(again, 1))["call_mode"] == "mesh"


async def test_threshold_zero_puts_every_call_on_the_sfu(
    sfu_server: LiveServer, sfu_client: httpx.AsyncClient
) -> None:
    room, (alice,) = await _people_in_a_room(sfu_client, 1)
    async with _socket(sfu_server, room, alice) as socket:
        frame = await _presence(socket, 1)
        assert frame["call_mode"] == "sfu"


async def test_without_an_sfu_presence_says_nothing_of_a_mode(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    room, (alice,) = await _people_in_a_room(client, 1)
    async with _socket(server, room, alice) as socket:
        assert "call_mode" not in await _presence(socket, 1)


async def test_a_kicked_person_leaves_the_participant_list_of_an_sfu_call(
    sfu_server: LiveServer, sfu_client: httpx.AsyncClient
) -> None:
    """The kick closes their socket and cancels its handler while it announces the leave
    (which asks the database for the call's mode): the list must still go out."""
    room, (alice, bob) = await _people_in_a_room(sfu_client, 2)
    async with _socket(sfu_server, room, alice) as first, _socket(sfu_server, room, bob):
        await _presence(first, 2)
        kicked = await sfu_client.post(
            f"/rooms/{room['id']}/members/{bob['id']}/kick", headers=auth(alice["access_token"])
        )
        assert kicked.status_code == 200, kicked.text
        after = await _presence(first, 1)
        assert [p["user_id"] for p in after["participants"]] == [alice["id"]]
        assert after["call_mode"] == "sfu"


async def test_a_recording_ends_with_the_call_and_its_video_is_queued(
    janus: Janus, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    settings = make_settings(sfu=sfu_settings(janus, recording_dir=str(recordings)))
    async with (
        run_server(settings) as server,
        httpx.AsyncClient(base_url=server.url, timeout=15) as client,
    ):
        room, (alice,) = await _people_in_a_room(client, 1)
        path = f"/rooms/{room['id']}/call/recording"
        async with _socket(server, room, alice) as socket:
            await _presence(socket, 1)
            started = await client.post(path, headers=auth(alice["access_token"]))
            assert started.status_code == 200, started.text
            assert started.json()["active"] is True
        # Alice left: nobody is in the call, so its recording is over too.

        async def stopped() -> CallRecording | None:
            async with server.context.sessionmaker() as session:
                found = await session.scalar(
                    select(CallRecording).where(CallRecording.room_id == room["id"])
                )
            return found if found is not None and found.stopped_at is not None else None

        async with asyncio.timeout(10):
            while (final := await stopped()) is None:
                await asyncio.sleep(0.1)
        assert final.video_id is not None
